"""otpctl: the administrator's command line of otpradius (the only package that imports click).

``entry`` is the console script, which loads the rest. One command group per module:
``main`` (the root group, ``--config`` and the one error mapping), ``db`` (init, db upgrade,
key rotate), ``users``, ``tokens``, ``admin_ops`` (activate, unlock, revoke, check) and
``audit``; ``context``, ``output`` and ``prompts`` are what those share.
"""
