"""The admin side's core: API keys with a TOTP second factor, the audit log, stock imports.

No Ray and no HTTP here; the Serve admin deployment and the CLI call these classes.
"""
