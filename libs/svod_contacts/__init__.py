"""Contacts for every service: the identifier types and one canonical spelling of phones,
e-mails and loyalty cards (``identifiers``, ``phones``, ``emails``, ``cards``). Pure: no I/O."""
