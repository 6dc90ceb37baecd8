"""Benchmarks: each prints figures (`make bench`); none is a test."""
