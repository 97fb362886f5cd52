"""Tests of guided policy search (trainers/gps), with the LQG test helpers."""
