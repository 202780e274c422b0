"""Models: the registry, feature blocks, fusion variants, MMMS-BA and checkpoints.

Importing this package registers every built-in model (``list_models()``).
"""

from avdf.models.attention import FUSIONS, bimodal_attention, gated_attention, masked_softmax
from avdf.models.base import ModelOutput
from avdf.models.blocks import create_block, list_blocks, register_block
from avdf.models.checkpoint import ensemble_checkpoint, load_checkpoint, save_checkpoint
from avdf.models.ensemble import Ensemble
from avdf.models.mmms_ba import MMMSBA
from avdf.models.registry import create_model, list_models, register_model

__all__ = [
    "FUSIONS",
    "Ensemble",
    "MMMSBA",
    "ModelOutput",
    "bimodal_attention",
    "create_block",
    "create_model",
    "ensemble_checkpoint",
    "gated_attention",
    "list_blocks",
    "list_models",
    "load_checkpoint",
    "masked_softmax",
    "register_block",
    "register_model",
    "save_checkpoint",
]
