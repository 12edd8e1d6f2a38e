"""The store's tables (SQLAlchemy Core). Changes go through an Alembic migration.

Times are UTC epoch seconds (floats): portable between SQLite and PostgreSQL,
cheap to compare, and days group as `ts // 86400`.

The events table stores policy.decide.EventRecord: its columns are `id` and the record's fields
(EVENT_COLUMNS; checked below at import, and by tests/test_event_schema.py).
"""

from dataclasses import fields

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)

from ..policy.decide import EventRecord

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("role", String(10), nullable=False, server_default="user"),  # user | admin
    Column("created_at", Float, nullable=False),
    Column("mode", String(10), nullable=True),  # enforce | observe | off; NULL = the config's default (0007)
)

# The addresses a user receives mail at. `address` is the matching key
# (lower-case, no +tag); "@example.org" is a catch-all for the domain.
user_addresses = Table(
    "user_addresses", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("address", String(320), nullable=False, unique=True),
    Column("is_primary", Integer, nullable=False, server_default="0"),
    Column("mode", String(10), nullable=True),  # this address's own mode; NULL = the user's (0007)
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex: a leak reveals no token
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    # the device this token is (issue 16): "script" for `users add`/`users token`, a host name when paired
    Column("name", String(100), nullable=False, server_default="script"),
)

# One-time pairing codes (`users invite`, POST /api/v1/users/{id}/pairing-code): only the hash is kept;
# a code pairs one device (used_at set in the same transaction that makes its token) until expires_at.
pairing_codes = Table(
    "pairing_codes", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),
    Column("device_id", Integer),  # the api_tokens row it made
)

# Allow and block entries. user_id NULL: a global (admin) entry.
list_entries = Table(
    "list_entries", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True),
    Column("action", String(5), nullable=False),  # allow | block
    Column("kind", String(7), nullable=False),  # address | domain | list
    Column("value", String(320), nullable=False),
    Column("source", String(10), nullable=False, server_default="manual"),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    # SPF/DKIM/DMARC seen when a confirmed sender's link was issued (from challenges.auth); NULL otherwise
    Column("auth", Text),
    Index("ix_list_entries_lookup", "kind", "value", "user_id"),
)

challenges = Table(
    "challenges", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("sender", String(320), nullable=False),  # the normalised key of the envelope sender
    Column("status", String(10), nullable=False),  # pending | confirmed | approved | denied | expired
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="1"),  # messages refused for it
    Column("confirm_failures", Integer, nullable=False, server_default="0"),
    Column("subject", Text, nullable=False, server_default=""),
    Column("client_ip", String(64), nullable=False, server_default=""),
    # "spf=pass:friend.example dkim=pass:friend.example dmarc=pass" as seen when the latest link was
    # issued; NULL when the checks did not run (SPEC §4.5 item 3: a confirmation records it)
    Column("auth", Text),
    # the latest refused message's From header (the Pending screener's display name, sanitised when
    # shown); written in the same statement as the subject, so the refusal path makes no extra trip (0013)
    Column("from_header", Text),
    Index("ix_challenges_pending", "user_id", "sender", "status"),
    Index("ix_challenges_expires", "expires_at"),  # housekeeping prunes by expiry
    Index("ix_challenges_status_id", "status", "id"),
    # the live stream polls "changed since" for all users (one poller per process), resumes per user:
    # updated_at first serves both, the user filter applies to the few recent rows
    Index("ix_challenges_updated", "updated_at"),
    Index("uq_challenges_one_pending", "user_id", "sender", unique=True,
          sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
)

# The challenge's current CAPTCHA (SPEC §5, §4.5): one answer, rendered once. A new picture is a
# new answer and any answer retires it, so no one can vote across renderings of one answer.
captchas = Table(
    "captchas", metadata,
    Column("challenge_id", Integer, ForeignKey("challenges.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("nonce", String(40), nullable=False),  # names this CAPTCHA in the form; a new one replaces it
    Column("answer", String(12), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("png", LargeBinary),  # the one picture, once rendered
    Column("wav", LargeBinary),  # the one sound (zlib), once asked for
)

# The confirmation page's rate limits, per minute and key, shared by every node (SPEC §4.5 item 6).
rate_limits = Table(
    "rate_limits", metadata,
    Column("key", String(100), primary_key=True),
    Column("minute", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Index("ix_rate_limits_minute", "minute"),
)

# Every link issued for a challenge (a reused challenge gets a new link per
# refusal, and the earlier ones keep working). Only hashes are stored: a copy
# of the database reveals no usable link.
challenge_tokens = Table(
    "challenge_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("challenge_id", Integer, ForeignKey("challenges.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
)

# The further challenges one link confirms: a refusal naming several recipients carries one link
# (SPEC §4.2 item 4), issued in challenge_tokens for the first recipient's challenge and listed
# here for the others'. Each recipient keeps a challenge of their own (their Pending list, their
# deny), and confirming the link allowlists the sender for each of them.
challenge_link_members = Table(
    "challenge_link_members", metadata,
    Column("token_hash", String(64), ForeignKey("challenge_tokens.token_hash", ondelete="CASCADE"),
           primary_key=True),
    Column("challenge_id", Integer, ForeignKey("challenges.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)

events = Table(
    "events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("user_id", Integer, index=False),
    Column("client_ip", String(64), nullable=False, server_default=""),
    Column("helo", String(255), nullable=False, server_default=""),
    Column("sender", String(320), nullable=False, server_default=""),
    Column("recipient", String(320), nullable=False, server_default=""),
    Column("verdict", String(20), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("subject", Text, nullable=False, server_default=""),
    Column("from_header", Text, nullable=False, server_default=""),
    Column("message_id", Text, nullable=False, server_default=""),
    Column("size", Integer),
    Column("spam_score", Float),
    Column("virus", String(200), nullable=False, server_default=""),
    Column("challenge_id", Integer),
    Column("details", Text, nullable=False, server_default="{}"),  # JSON: auth results, symbols, notes
    Column("tag", Text),  # the sign-up address's name the message came in by (0011); NULL: none
    Index("ix_events_ts", "ts"),
    Index("ix_events_user_id", "user_id", "id"),
    Index("ix_events_verdict_id", "verdict", "id"),
    Index("ix_events_user_verdict_id", "user_id", "verdict", "id"),
    # PostgreSQL only (migration 0010): a user's `since` page reads their rows of the period, not all of them
    Index("ix_events_user_ts", "user_id", "ts").ddl_if(dialect="postgresql"),
    # migration 0015: a user's GET /events?tag= page; partial, so only mail by a sign-up address pays it
    Index("ix_events_user_tag", "user_id", "tag", "id", sqlite_where=text("tag IS NOT NULL"),
          postgresql_where=text("tag IS NOT NULL")),
)
# Migration 0012: a sender's history finds their events, and their domain's, on expressions of the sender as
# given in MAIL FROM (store/history.py spells the same expressions; constants inline, as the indexes have them).
Index("ix_events_sender_key", func.lower(events.c.sender), events.c.id)
for _dialect, _find in (("sqlite", "instr"), ("postgresql", "strpos")):
    Index("ix_events_sender_domain",
          func.lower(func.substr(events.c.sender, getattr(func, _find)(events.c.sender, literal_column("'@'"))
                                 + literal_column("1"))), events.c.id).ddl_if(dialect=_dialect)

# The event's fields, declared once (policy.decide.EventRecord), in the order the store writes them.
EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(EventRecord))
if set(events.c.keys()) != {"id", *EVENT_COLUMNS}:  # a field added to the record needs its column (and migration)
    raise RuntimeError(f"the events table {sorted(events.c.keys())} does not store EventRecord {EVENT_COLUMNS}")

# Events per UTC day (ts // 86400), user and verdict: what /api/v1/stats reads, so
# its cost does not grow with the event log. Kept in the transaction that writes
# (or prunes) the events. user_id 0 stands for "no user" (relay and unknown-
# recipient refusals): NULL would not be unique in the key.
event_counts = Table(
    "event_counts", metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("verdict", String(20), primary_key=True),
    Column("count", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Index("ix_event_counts_day", "day"),  # an admin's stats: every user's rows for the days asked
)
NO_USER = 0  # event_counts.user_id for events without a user

# Screened and bulk events per user, sender (ASCII lower-cased) and UTC day: what /api/v1/screened
# groups, so a page does not read the event log. Kept in the transaction that writes (or prunes) the
# events, like event_counts; user_id 0 for events without a user. last_id: the newest event's id.
screened_counts = Table(
    "screened_counts", metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("sender", String(320), primary_key=True),
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("screened", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("bulk", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("first_ts", Float, nullable=False),
    Column("last_ts", Float, nullable=False),
    Column("last_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Index("ix_screened_counts_day", "day"),  # pruning
    Index("ix_screened_counts_user_last", "user_id", "last_id"),  # a user's page: their newest rows first
    Index("ix_screened_counts_last", "last_id"),  # an admin's page: everyone's newest rows first
    Index("ix_screened_counts_sender", "sender", "day"),  # an admin's page: its senders' rows (all users)
)

# Hashes of Message-IDs the user sent, for reply recognition (SPEC §4.2 item 8).
sent_ids = Table(
    "sent_ids", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("hash", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
)

# Small key/value state shared by nodes (e.g. the secret that signs CSRF tokens).
settings = Table(
    "settings", metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    UniqueConstraint("key", name="uq_settings_key"),
)

# The digest (issue 16 item 4): each user's choice and when their last digest went out. No row: the
# configured default, never sent. `last_sent_at` is also the claim: a node sends only after moving it
# from the value it read (compare-and-set), so two nodes never send the same digest.
digest_settings = Table(
    "digest_settings", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("frequency", String(10)),  # off | daily | weekly; NULL = the configured default
    Column("last_sent_at", Float),
)

# Digest links that were used (single use): the link's nonce, kept until the link would have expired.
digest_links_used = Table(
    "digest_links_used", metadata,
    Column("nonce", String(40), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
)

# Approved senders told so (issue 16 item 5): at most one notice per sender and user, ever.
notified_senders = Table(
    "notified_senders", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("sender", String(320), primary_key=True),
    Column("created_at", Float, nullable=False),
)

# Undo (issue 17 item 2): what a user's decision or list change did, so that they (and only they) can
# reverse it exactly, for a few minutes (store/undo.py UNDO_WINDOW). `kind`: decision (approve, deny,
# allow-domain on a challenge), add (a list entry), remove (a list entry). `entry_id`: the entry the action
# created (NULL when it was there before) or, for remove, the removed entry's id. `snapshot`: JSON of an
# entry to put back on undo (the removed one, or the other list's entry an add lifted). Rows older than a
# day are dropped as new ones are written.
undo_records = Table(
    "undo_records", metadata,
    Column("id", Integer, primary_key=True),
    Column("actor_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("challenge_id", Integer),
    Column("entry_id", Integer),
    Column("entry_key", String(340)),  # "allow address:bob@x.org": the entry under entry_id (ids can be reused)
    Column("prior_status", String(10)),
    Column("snapshot", Text),
    Column("created_at", Float, nullable=False, index=True),
    Index("ix_undo_records_challenge", "challenge_id"),
    Index("ix_undo_records_entry", "entry_id"),
)

# Sign-up addresses (issue 19, 0011): `alice+acme@example.org` for the user who owns alice@example.org.
# A name is the user's once: a revoked or expired tag is kept, so mail to it stays refused.
tags = Table(
    "tags", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("address", String(320), nullable=False),  # the owner's address key (alice@example.org)
    Column("name", String(32), nullable=False),
    Column("dated", Integer, nullable=False, server_default="0"),  # 1: the address carries its day and a MAC
    Column("folder", String(10)),  # inbox | tag | screened; NULL = the config's [tags] folder
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("received", Integer, nullable=False, server_default="0"),  # messages delivered by it
    Column("refused", Integer, nullable=False, server_default="0"),  # messages refused at it (spam, virus, revoked)
    Column("last_received_at", Float),
    UniqueConstraint("user_id", "name", name="uq_tags_user_name"),
)

# Who wrote to a tag: the "which site gave my address away" view (top senders per tag).
tag_senders = Table(
    "tag_senders", metadata,
    Column("tag_id", Integer, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("sender", String(320), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("last_at", Float, nullable=False),
)
