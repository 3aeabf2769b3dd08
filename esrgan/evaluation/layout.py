"""The folder layout of a test or sweep run (``experiments/<name>/``), shared by the writers (tester, sweep)
and the reader (the HTML report).

``<run>/<set>/<model label>/<image>.png`` holds each model's outputs; beside them, in the same ``<set>/``
folder, the tester and the report keep their own folders, named here. A model label may be none of them.
"""

HR_FOLDER = "_hr"  # the HR images the report compares with
BICUBIC_FOLDER = "_bicubic"  # the bicubic baseline when no 'bicubic' model is tested
COMPARE_FOLDER = "compare"  # the comparison pictures
THUMB_FOLDER = "_thumbs"  # the report's thumbnails
RESERVED_LABELS = (HR_FOLDER, BICUBIC_FOLDER, COMPARE_FOLDER, THUMB_FOLDER)
