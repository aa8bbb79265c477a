"""Clip format, video and audio I/O, frames and samplers, landmarks, head pose and the synthetic heads."""
