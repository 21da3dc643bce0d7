"""dipn: real-time purchase intent from swipe, tap and browse sequences; DIPN and its baselines."""
