"""What the host hands otpcore through its ports: the wall clock and the configuration file.

Shared by both shells (``radiusd`` and ``cli``, which may not import each other); it imports
otpcore and nothing of either shell, and otpcore never imports it.
"""
