"""Authentication and authorisation of the web node: users, roles, sessions, API tokens, CSRF.

The permission table and the view helpers are in ``web.auth.permissions``; users and tokens
in the store in ``web.auth.users``; the login form in ``web.auth.views``.
"""
