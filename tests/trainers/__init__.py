"""Tests of meta-training (trainers/): the run loop, BPTT, PES / ES, distribution, run directories."""
