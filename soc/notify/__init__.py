"""Notifications: incident changes routed to people on Zalo, email, webhooks and Telegram.

The flow (DESIGN.md): `soc.incidents` records -> routes pick recipients -> a per-incident window
holds back all but the first message (the rest becomes one digest at the window's end) -> a
durable SQLite outbox -> channel senders that retry with backoff and park what finally fails.
"""
