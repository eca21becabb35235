"""Script-neutral text forms for comparing names: the shared ones (``svod_names.text``, where
``fold``, ``latin_skeleton`` and ``to_cyrillic`` are described), under the names the matcher
has always imported them by."""

from svod_names.text import fold, is_latin, latin_skeleton, to_cyrillic

__all__ = ["fold", "is_latin", "latin_skeleton", "to_cyrillic"]
