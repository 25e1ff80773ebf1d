"""Simulated training: learners that stand in for GRPO training so strategies can be compared
without a GPU."""
