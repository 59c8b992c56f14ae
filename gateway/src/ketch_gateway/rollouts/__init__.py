"""Safe rollouts: shadow traffic, fixed splits and feedback-judged canaries."""
