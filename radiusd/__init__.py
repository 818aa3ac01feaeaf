"""otpradius RADIUS daemon: packet codec, duplicate cache and server loop."""
