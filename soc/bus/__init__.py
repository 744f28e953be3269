"""The bus between stages: a contract (`base`) and its implementations, one module each."""

from soc.bus.base import Bus, Consumer, Delivered, Message

__all__ = ["Bus", "Consumer", "Delivered", "Message"]
