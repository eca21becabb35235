"""Russian person names for every service: transliteration-neutral forms (``text``) and the
first-name table (``first_names``: passport names, their other spellings and diminutives)."""
