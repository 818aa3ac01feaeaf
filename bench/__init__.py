"""The otpradius benchmark (``python -m bench``)."""
