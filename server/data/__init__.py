"""Data files the server ships: the common-password list (``common-passwords-100k.txt.gz``, its
source and licence in ``LICENSE-common-passwords.md``)."""
