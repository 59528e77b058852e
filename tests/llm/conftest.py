# The served model, counting proxy and example questions are shared with tests/quality.
from served_model import examples_path, pauses, proxy, served_model  # noqa: F401
