"""rmkit's data model and loaders. No torch imports here."""
from rmkit.data.schema import (BestOfN, Conversation, DataError, Message, PreferencePair,
                               conversation_to_dicts, to_conversation)
from rmkit.data.sources import detect_format, iter_pairs, load_pairs

__all__ = ["BestOfN", "Conversation", "DataError", "Message", "PreferencePair",
           "conversation_to_dicts", "to_conversation", "detect_format", "iter_pairs", "load_pairs"]
