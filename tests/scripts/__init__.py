"""Tests of the command lines and the benchmark (scripts/)."""
