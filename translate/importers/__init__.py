"""Importers of generators trained by other codes: each reads a foreign checkpoint safely, infers
its architecture, and writes the toolkit's own self-describing export (``translate.io``), so
nothing downstream knows where the weights came from."""

from .reference import ReferenceArchitecture, import_reference_checkpoint, infer_architecture
from .safe_load import read_state_dict

__all__ = ["ReferenceArchitecture", "import_reference_checkpoint", "infer_architecture", "read_state_dict"]
