"""otpcore: the domain of otpradius — tokens, users, the decision, and their storage."""
