"""Every limit of the server in one place, with its unit last in its name.

A leaf module: it imports nothing of Croupier, so every layer (``bot``, ``actors``,
``storage``, ``metrics``, ``bench``) reads its bounds here without an upward import.
Two kinds of figure live here:

- ``Limits``: the bounds the runtime is built with, one frozen record passed down from
  the server to the actor system, the writer and the domain. Tests build a smaller one
  instead of patching module constants.
- The transports' records (``RateLimit``, ``HttpLimits``, ``ApiLimits``,
  ``DashboardLimits``, ``EndpointLimits``), at the end: built by the server from the
  configuration, and by tests smaller.
- Module constants below it: bounds no deployment tunes (what a record format or a
  protocol allows, the sizes of internal batches), read where they apply.

Names carry the unit last (``_seconds``, ``_bytes``, ``_chars``, ``_entries``). ``_max``
and ``_min`` mark a bound; ``_default`` marks the default of a setting; a name with neither
is a setting (an interval, a batch size) rather than a bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A balance is stored as a signed 64-bit figure in places (leaderboard keys), so every
# per-scope ceiling must stay below this.
balance_coins_ceiling = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    """Bounds for the runtime; the defaults suit one busy server on a 2-core machine."""

    # Actor runtime.
    mailbox_messages_max: int = 1_024
    actor_batch_messages_max: int = 256
    actors_resident_max: int = 50_000
    actor_idle_seconds_max: float = 300.0
    passivation_sweep_seconds: float = 1.0
    ask_seconds_default: float = 10.0
    restarts_max: int = 5
    restart_window_seconds: float = 60.0

    # Group-commit writer.
    batch_writes_max: int = 4_096
    batch_linger_seconds_max: float = 0.0
    writer_queue_requests_max: int = 65_536
    map_bytes_initial: int = 1 << 30
    map_bytes_growth_factor: int = 2
    # The writer grows the map ahead of need once it is this full and no long reader
    # (integrity check, backup) holds the gate, so that MapFullError, which must wait for
    # such readers while every write waits, stays the exception.
    map_used_ratio_grow_at: float = 0.75

    # Economy and games.
    idempotency_key_bytes_max: int = 128
    # A transfer id holds its kind, scope, user and a request id (plus "/refund").
    transfer_id_bytes_max: int = 256
    # How long a mutation's stored result answers repeats of its key. Discord redelivers
    # an interaction within minutes (its token lives 15); a week leaves room for any
    # client retry, and past it the records are pruned so they do not grow forever.
    idempotency_retention_seconds: float = 7 * 86_400.0
    idempotency_prune_interval_seconds: float = 3_600.0
    # The pruning pass asks this many wallets at once, and its search for old results
    # reads at most this many records per read transaction (a long one pins old pages).
    prune_wallets_concurrent_max: int = 16
    prune_scan_records_per_read_max: int = 5_000
    reason_chars_max: int = 200
    history_page_entries_max: int = 25
    leaderboard_page_entries_max: int = 25
    leaderboard_pages_max: int = 400
    shop_items_per_scope_max: int = 200
    item_name_chars_max: int = 64
    item_price_coins_max: int = 10**15
    inventory_item_count_max: int = 1_000_000
    # A live game with no move for this long ends (settings: the server's configuration
    # overrides both).
    game_idle_seconds_default: float = 300.0
    game_recovery_seconds_default: float = 2 * 3600.0
    metrics_scopes_max: int = 20

    # Containment: a transfer, game or timer whose handling raises is retried with a
    # doubling wait from the first to the last figure, and set aside ("parked") after
    # this many failed attempts, so one bad record never stops boot or a loop.
    delivery_attempts_max: int = 5
    delivery_retry_seconds_min: float = 1.0
    delivery_retry_seconds_max: float = 300.0
    timer_attempts_max: int = 5
    # A timer whose handler fails (or asks to be retried) fires again after a doubling
    # wait between these figures, with jitter so that a burst of failures does not retry
    # in step; a 429's retry_after is honoured instead, and does not count as a failure.
    timer_retry_seconds_min: float = 5.0
    timer_retry_seconds_max: float = 3_600.0
    # A guild where the bot lost a permission is probed again after a doubling wait
    # between these figures; its other Discord timers wait for the probe.
    timer_guild_backoff_seconds_min: float = 60.0
    timer_guild_backoff_seconds_max: float = 6 * 3_600.0
    # Timers fired at once; the rest wait in the index, so a catch-up of a million
    # overdue timers holds this many tasks, not a million.
    timer_fires_concurrent_max: int = 64
    # The overdue gauge counts this many keys at most, so that a long downtime does not
    # make every metrics refresh walk the whole index.
    timer_overdue_counted_max: int = 100_000
    # How often the pending-by-kind gauge is recounted, in a worker thread (it reads
    # every timer, so it runs rarely and never at boot).
    timer_pending_count_seconds: float = 60.0
    settings_cached_scopes_max: int = 10_000

    # Scheduler: tempbans, birthdays and reminders.
    tempban_seconds_min: int = 60
    tempban_seconds_max: int = 365 * 86_400
    reminder_seconds_min: int = 60
    reminder_seconds_max: int = 365 * 86_400
    # A recurring reminder more often than hourly is a spam bot, not a reminder.
    reminder_every_seconds_min: int = 3_600
    reminders_per_member_max: int = 25
    reminder_text_chars_max: int = 1_000
    # A reminder fired this late (the server was down) is delivered with a note of how
    # late; past the second figure it is dropped, logged and counted instead.
    reminder_on_time_seconds: float = 60.0
    reminder_late_seconds_max: float = 7 * 86_400.0
    # The entries a scheduler list (tempbans, birthdays) shows at most.
    scheduler_list_entries_max: int = 25
    # A change of a guild's birthday settings reschedules its birthdays in writes of at
    # most this many, so one large guild never makes one huge transaction.
    birthdays_per_write_max: int = 1_000


DEFAULT_LIMITS = Limits()


# --- storage -------------------------------------------------------------------------

# Named sub-databases one LMDB environment may hold (LMDB's ``max_dbs``).
subdatabases_max = 64


# --- metrics -------------------------------------------------------------------------

# Readiness conditions a server registers; past it registering one is a bug.
readiness_conditions_max = 32


# --- actors --------------------------------------------------------------------------

# Integrity check: violations kept for the report's text (all are counted), and how many
# records the scan reads between two looks at whether its caller was cancelled.
integrity_violations_kept_max = 50
integrity_scan_records_per_cancel_check = 10_000
# A parked record's last error is kept to this many characters.
parked_error_chars_max = 500
# The retention removes at most this many stored answers per commit, so one pass never
# holds the writer for long.
answers_pruned_per_commit_max = 2_000
audit_page_entries_max = 100
audit_request_bytes_max = 256
# Games: the largest payout of any game is below 1000 times the total stake (the slots
# top prize and a doubled split blackjack are far below it), so with this bound every
# payout stays below 2**63: it fits a msgpack signed integer and the balance ceiling.
stake_coins_max = 10**15
payout_multiple_max = 1_000
# Provably fair draws: a player's client seed, a bet's nonce, and how many times a bet is
# dealt again when the player's seed pair moved on before its commit (a player's bets take
# turns, so only a rotation can get in between, and a handful of retries is far beyond
# what happens).
client_seed_chars_max = 64
nonce_max = 2**63 - 1
seed_pair_attempts_max = 8
# API tokens.
api_tokens_per_guild_max = 25
api_token_name_chars_max = 32
# A presented token longer than this is not one of ours; it is refused before hashing.
api_token_chars_max = 64
# The Discord port (actors/discord_port.py): Discord bounds an audit-log reason at 512
# characters, a ban's message deletion at 7 days, a message at 2,000 characters, and
# compares a nonce of at most 25.
audit_reason_chars_max = 512
ban_delete_message_seconds_max = 7 * 86_400
message_content_chars_max = 2_000
message_nonce_chars_max = 25


# --- scheduler -----------------------------------------------------------------------

# Longer text than this is no duration anyone means (``1w2d3h4m``); refusing it first
# keeps the parser's work bounded.
duration_text_chars_max = 32
# The longest IANA zone name is 32 characters; twice that leaves room without letting a
# command carry a page of text into the zone look-up.
timezone_name_chars_max = 64
# A tempban's or unban's reason: Discord's audit log keeps 512 characters, and the
# moderator's id and the duration are added to it.
tempban_reason_chars_max = 400
# A reminder's text as listings show it.
reminder_shown_chars_max = 80


# --- Discord's own limits ------------------------------------------------------------

# Names and descriptions of commands and options; the console follows them too, so a
# command set that runs on the console also registers on Discord.
command_name_chars_max = 32
command_description_chars_max = 100
command_options_max = 25
# A button's custom id.
custom_id_chars_max = 100
# What a message may carry; longer text is cut, since a refused reply would leave the
# user with "This interaction failed" instead.
embed_title_chars_max = 256
embed_description_chars_max = 4096
embed_field_name_chars_max = 256
embed_field_value_chars_max = 1024
embed_fields_max = 25
embed_footer_chars_max = 2048
button_label_chars_max = 80
buttons_per_row_max = 5
button_rows_max = 5
# Discord refuses an embed over 6,000 characters in all, so listings are paged to stay
# well below it: ten shop items with 200-character descriptions, or 25 short lines.
shop_page_items_max = 10
inventory_page_lines_max = 25
history_reason_chars_max = 60
# A signed interaction's timestamp header, in decimal seconds.
interaction_timestamp_chars_max = 20


# --- transports ----------------------------------------------------------------------

# Console: a line longer than this is refused whole, so one runaway input cannot grow
# memory; input is read this much at a time.
console_line_bytes_max = 64 * 1024
console_receive_bytes_max = 16 * 1024
# Discord REST: connections held open at once (follow-ups of deferred interactions and
# role grants share them, and a burst of slow commands must not open thousands of
# sockets), how long one request may take, and a 429 retried at most this many times,
# each after Discord's retry_after (capped).
rest_connections_max = 100
rest_timeout_seconds = 10.0
rest_rate_limited_retries_max = 3
rest_retry_after_seconds_max = 10.0
# Answers to interactions: connections kept open to Discord (a burst of answers shares
# them, HTTP keep-alive), the pause before retrying an answer Discord failed with a 5xx
# or the network dropped, how many such failures an answer gets, and how long one
# attempt may take (a follow-up may be sent for 15 minutes, but not by one request
# hanging that long). A 429 is not a failure: it is waited out for as long as the answer
# has time.
answer_connections_max = 100
answer_retry_pause_seconds = 0.05
answer_attempts_max = 3
answer_request_seconds_max = 10.0
# The HTTP server accepts this many connections in one go before letting other tasks run.
http_accepts_per_wakeup_max = 1_000
# Registering the commands is retried with backoff while Discord cannot be reached.
register_retry_seconds_min = 1.0
register_retry_seconds_max = 60.0


# --- commands ------------------------------------------------------------------------

# A setting's value as typed by an admin (command or dashboard form).
setting_value_chars_max = 100
# A blackjack verification lists every action of the round; a round has at most a few
# dozen, so this bound only stops abuse.
game_actions_chars_max = 400
game_id_chars_max = 64
# The dashboard's audit page shows this many entries.
dashboard_audit_page_entries = 50


# --- the boundary --------------------------------------------------------------------

# Discord snowflakes are unsigned 64-bit numbers; 0 is never a real id.
snowflake_id_min = 1
snowflake_id_max = 2**64 - 1
snowflake_digits_max = 20
# Discord's integer options carry at most 2**53 in either direction; an option without a
# bound of its own gets these, so no transport can pass a larger figure to the domain.
integer_option_min = -(2**53)
integer_option_max = 2**53
# The longest decimal text of any whole number a bound here admits (2**64 - 1 has 20
# digits, and a sign makes 21).
number_digits_max = 20
# Text options without a length bound of their own (Discord allows 6,000).
text_chars_max_default = 2_000
# How much of a refused value a message quotes.
shown_input_chars_max = 40
# A JSON request (console line, API body) is at most three levels deep
# ({"options": {"user": {"id": ...}}}); deeper nesting is refused before parsing, so a
# line of thousands of brackets cannot exhaust the parser's recursion.
json_depth_max = 8
# How much of the other process's command line a refusal of the instance lock quotes.
process_name_chars_max = 80
# Discord actions (the scheduler's calls): connections held open apart from the
# interactions' own client, so that a catch-up of many timers never delays an answer;
# how long one call may take; the wait after a 429 without a usable retry_after; DM
# channels remembered per user, so that a reminder does not open one each time.
action_connections_max = 20
action_timeout_seconds = 10.0
action_retry_after_seconds_default = 1.0
dm_channels_cached_max = 10_000


# --- the server ----------------------------------------------------------------------

# Operational thresholds of the integrity run, beside the money checks: free disk below
# this, a map fuller than this, the newest verified backup older than this, a timer
# overdue past this grace are each reported.
disk_free_bytes_min = 256 * 1024 * 1024
map_used_ratio_max = 0.9
backup_age_seconds_max = 26 * 3600
timer_overdue_grace_seconds = 300.0
# Periodic work: the outbox sweep's and the gauges' intervals.
outbox_sweep_seconds = 60.0
gauges_refresh_seconds = 5.0
# Connecting to Discord is retried with a doubling wait between these.
discord_connect_retry_seconds_min = 1.0
discord_connect_retry_seconds_max = 60.0
# The collector runs a young collection after this many allocations (CPython's default
# is 700); see actors.casino.tune_gc.
gc_young_collection_objects = 100_000
# How many refunds of old games boot recovery runs at once.
recovery_refunds_concurrent_max = 64
# Backups: the schedule sleeps in steps no longer than this and looks at the wall clock
# after each, because trio's clock is monotonic: it does not follow a wall clock that is
# set forward, nor (on Linux) the time a machine spends suspended. Files are read and
# hashed this much at a time.
backup_clock_recheck_seconds = 300.0
backup_read_chunk_bytes = 1 << 20


# --- the Discord gateway client ------------------------------------------------------

# Discord's figure: an interaction must be acknowledged within 3 s of its creation.
interaction_deadline_seconds_default = 3.0
# Discord's figure: an interaction's token allows follow-ups and edits for 15 minutes.
interaction_token_seconds = 15 * 60.0
# Discord lets one shard of each max_concurrency bucket identify every 5 s.
identify_interval_seconds_default = 5.0
# How long a shutdown waits for interactions already being handled before cancelling them.
drain_seconds_default = 10.0
# How old an interaction may get while its command runs before it is acknowledged
# ("thinking..."): the answer still needs a round trip within the 3 s.
defer_after_seconds_default = 1.5
# Interactions handled at once; past it an interaction is answered "busy" at once.
interactions_in_flight_max_default = 5000
gateway_latency_poll_seconds = 1.0
# How long a stopping client may take to close its gateway connections before it is
# cancelled.
gateway_close_seconds_max = 2.0
# Lines logged per second about interactions that were not run.
not_run_lines_per_second_max = 10


# --- HTTP API ------------------------------------------------------------------------

# "api:" + a guild id of up to 20 digits + ":" leaves this much of the economy's key.
api_idempotency_key_chars_max = 100


# --- configuration -------------------------------------------------------------------

# The bounds of every numeric key. A minute-scale mistake (seconds typed as
# milliseconds, a pasted snowflake) must be refused, not run with for weeks.
backup_keep_days_max = 3_650
integrity_interval_seconds_max = 7 * 86_400
game_idle_seconds_max = 86_400
game_recovery_seconds_max = 30 * 86_400
# The most a timer's attempts may be configured to (Limits.timer_attempts_max): a timer
# that fails that many attempts in a row is parked (see actors/timers.py).
timer_attempts_setting_max = 100
ratelimit_commands_per_minute_max = 1_000_000
ratelimit_burst_commands_max = 100_000
api_ratelimit_requests_per_minute_max = 6_000_000
api_ratelimit_burst_requests_max = 100_000
port_number_max = 65_535
# Discord's largest bots run thousands of shards; five digits leave room to spare.
discord_shards_max = 99_999
discord_shard_ids_chars_max = 4_096
# Text keys are bounded too, so one pasted file cannot become a setting.
discord_token_chars_max = 256
url_chars_max = 2_048
path_chars_max = 4_096
# The dashboard signs its cookies with this secret; a short one can be guessed.
session_secret_chars_min = 32
# How much of a refused value the error line repeats.
shown_value_chars_max = 60
# An environment value longer than this many characters is not a number we accept, so it
# is never handed to int() (whose cost grows with the length of the text).
env_number_chars_max = 24


# --- the transports' records of bounds ---------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per user: ``burst_commands`` at once, refilled at
    ``refill_per_second``. At most ``tracked_users_max`` buckets are kept; past that the
    least recently active user's bucket is dropped, which only forgets a user who has been
    quiet longer than every tracked one."""

    refill_per_second: float = 1.0
    burst_commands: int = 5
    tracked_users_max: int = 100_000

    def __post_init__(self) -> None:
        if self.refill_per_second <= 0:
            raise ValueError("refill_per_second must be above 0")
        if self.burst_commands < 1:
            raise ValueError("burst_commands must be at least 1")
        if self.tracked_users_max < 1:
            raise ValueError("tracked_users_max must be at least 1")


@dataclass(frozen=True)
class HttpLimits:
    """What one HTTP listener accepts: connections, header bytes and idle times."""

    connections_max: int = 1_000
    # Connections the kernel may queue while ``connections_max`` are open.
    backlog_connections: int = 4_096
    # Request line plus headers; hypercorn answers 400 past it.
    header_bytes_max: int = 16 * 1024
    # A connection that sends nothing for this long is closed (slow clients).
    read_idle_seconds: int = 30
    # An idle keep-alive connection is closed after this long.
    keep_alive_seconds: float = 75.0
    keep_alive_requests_max: int = 10_000

    def __post_init__(self) -> None:
        for name in ("connections_max", "backlog_connections", "header_bytes_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True)
class DashboardLimits:
    """The dashboard's bounds and lifetimes."""

    session_seconds: int = 12 * 3600
    sessions_max: int = 10_000
    # How long a login may take between leaving for Discord and coming back.
    login_seconds: int = 600
    # How long a page may trust the guild lists it fetched; writes always fetch again.
    guilds_cache_seconds: float = 30.0
    # The guild picker asks whether the bot is in each guild the member manages, for
    # this many guilds at most; and that many answers are remembered.
    picker_guilds_max: int = 100
    bot_presence_kept_max: int = 10_000
    discord_timeout_seconds: float = 10.0
    form_bytes_max: int = 16 * 1024
    form_fields_max: int = 64
    # Discord lists at most 200 guilds per page of /users/@me/guilds.
    guilds_listed_max: int = 200
    roles_listed_max: int = 250


@dataclass(frozen=True)
class EndpointLimits:
    """The endpoint's bounds; the defaults suit Discord's own deliveries."""

    # Discord's largest deliveries carry a message (a button's) and resolved users.
    body_bytes_max: int = 128 * 1024
    # Interactions accepted at once (running or waiting to run); past it "busy".
    in_flight_max: int = 2_000
    # Discord needs the answer within 3 s of sending it. The clock here starts when the
    # request reaches the endpoint's code, after hypercorn has read and parsed it, which
    # under load is itself a queue; the rest leaves room for that, the response's own
    # queue and the network.
    defer_after_seconds: float = 1.5
    # How long a deferred command may take before its follow-up is abandoned: Discord's
    # interaction tokens last 15 minutes.
    follow_up_seconds_max: float = 14 * 60.0
    answers_kept_max: int = 10_000
    # Commands running at once; the rest wait their turn in arrival order.
    running_max: int = 64

    def __post_init__(self) -> None:
        if self.body_bytes_max < 1024:
            raise ValueError("body_bytes_max must be at least 1024")
        if min(self.in_flight_max, self.answers_kept_max, self.running_max) < 1:
            raise ValueError("in_flight_max, answers_kept_max and running_max must be >= 1")
        if not 0 < self.defer_after_seconds < 3:
            raise ValueError("defer_after_seconds must be between 0 and 3")


@dataclass(frozen=True)
class ApiLimits:
    """What one request may send, and each token's rate."""

    body_bytes_max: int = 16 * 1024
    json_depth_max: int = 4
    page_entries_max: int = 100
    # Requests being answered under an idempotency key at once, across all guilds.
    in_flight_keys_max: int = 10_000
    rate: RateLimit = field(
        default_factory=lambda: RateLimit(
            refill_per_second=20.0, burst_commands=100, tracked_users_max=10_000
        )
    )
