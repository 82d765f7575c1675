"""Figures of the paper and of the data: one function per figure, each returns a Figure."""
