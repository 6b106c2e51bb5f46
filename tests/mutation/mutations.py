"""The mutations ``run.py`` applies, one at a time. Each removes one layer of defence.

``name``: unique; ``issue``: the case of issue 7 it stands for ("extra" = chosen here);
``edits``: (file, snippet that must occur exactly once, replacement); ``tests``: the smallest
set of tests that must fail when the layer is gone (files or node ids).
"""

# ruff: noqa: ISC004 - snippets are long string literals split over lines, on purpose

from __future__ import annotations

LAYERS = "tests/integration/test_exactly_once_layers.py"
WHO_MAY = "tests/scenario/test_who_may.py"
APPROVALS = "tests/unit/test_approvals.py"
POLICY = "tests/unit/test_policy.py"
AUDIT = "tests/unit/test_audit_chain.py"
INGRESS = "tests/scenario/test_ingress.py"
REPLAY = [f"{INGRESS}::test_a_replayed_finish_cannot_close_the_next_run",
          f"{INGRESS}::test_a_replay_to_another_replica_is_refused_too"]
SECRETS = "tests/scenario/test_secrets.py"
OUTBOX = ["tests/unit/test_outbox_touch.py", "tests/integration/test_outbox.py"]
RESUME = "tests/scenario/test_rollback_resume.py"
OUTSIDE_ROLLBACK = "tests/scenario/test_outside_rollback.py"
OUTSIDE_POLICY = "tests/scenario/test_outside_policy.py"
GUARDED = "tests/scenario/test_guarded_protections.py"  # issue 23
AUTOPILOT = "tests/autopilot/test_autopilot_bot.py"  # issue 21
DECISION_CARD = "tests/decisions/test_decision_card.py"

REAPER = "bot/engine/reaper.py"  # the reaper and what a failure holds
CLAIM = "bot/engine/claim.py"  # the claim (the worker's Claimer)
REPO = "bot/store/repo.py"
EXECUTIONS = "bot/engine/executions.py"  # the one writer of step executions
CORE = "bot/store/migrations/versions/0001_core.py"
EXACTLY_ONCE = "bot/store/migrations/versions/0004_exactly_once.py"
REQUESTS = "bot/engine/requests.py"
RB_REQUESTS = "bot/engine/rollback_requests.py"  # Rollbacks: requests, break-glass, queue
RB_PLANNER = "bot/engine/rollback.py"  # RollbackPlanner: where a rollback stopped, its rest
RUNS = "bot/engine/runs.py"
RECOVERY = "bot/engine/recovery.py"
RULE = "runbook/rules/approvals.py"
GUIDED = "runbook/rules/guided_failure.py"  # guided failure's pure rule

CLAIM_READ = ('" LIMIT %s FOR UPDATE SKIP LOCKED", (limit,)', '" LIMIT %s", (limit,)')
# the claim's compare-and-set: the table lets a claim fire from queued only; widened here
CLAIM_TABLE = ('    ("queued", "claim"): "running",\n',
               '    ("queued", "claim"): "running",\n    ("running", "claim"): "running",\n'
               '    ("succeeded", "claim"): "running",\n')


def _off(file: str, condition: str) -> tuple[str, str, str]:
    """An ``if`` whose check is switched off: ``if <condition>:`` -> ``if False:``."""
    return (file, f"if {condition}:", "if False:")


MUTATIONS: list[dict] = [
    # ------------------------------------------------------------ the cases issue 7 lists
    {"name": "claim-without-row-lock-and-cas",
     "issue": "the worker's claim without its row lock and without the compare-and-set on queued",
     "edits": [(REPO, *CLAIM_READ), (EXECUTIONS, *CLAIM_TABLE)],
     "tests": [LAYERS]},
    {"name": "index-one-running-step-per-run",
     "issue": "the 'one running step per run' index made non-unique",
     "edits": [(CORE, "CREATE UNIQUE INDEX step_executions_one_running",
                "CREATE INDEX step_executions_one_running")],
     "tests": [LAYERS]},
    {"name": "index-one-pending-approval-per-step",
     "issue": "the 'one pending approval per step' index made non-unique",
     "edits": [(CORE, "CREATE UNIQUE INDEX approvals_one_pending",
                "CREATE INDEX approvals_one_pending")],
     "tests": [LAYERS]},
    {"name": "index-one-active-run",
     "issue": "the 'one active run' index made non-unique",
     "edits": [(CORE, "CREATE UNIQUE INDEX runs_one_active", "CREATE INDEX runs_one_active")],
     "tests": [LAYERS]},
    {"name": "worker-without-advisory-lock",
     "issue": "the worker's advisory lock removed",
     "edits": [(CLAIM, 'conn.execute("SELECT pg_advisory_lock(%s, %s)",\n'
                       '                                     (repo.LOCK_NS, exe["id"]))',
                "pass")],
     "tests": [LAYERS]},
    {"name": "reaper-ignores-advisory-lock",
     "issue": "a reaper that ignores the advisory lock and marks a step another replica is "
              "still running as interrupted",
     "edits": [_off(REAPER, 'not repo.try_lock_execution(conn, execution_id=exe["id"])')],
     "tests": [LAYERS]},
    {"name": "audit-head-without-for-update",
     "issue": "the audit head read without FOR UPDATE",
     "edits": [(REPO, '"SELECT last_id, last_hash FROM audit_head FOR UPDATE"',
                '"SELECT last_id, last_hash FROM audit_head"')],
     "tests": ["tests/integration/test_audit_roles.py"
               "::test_concurrent_appends_both_commit_with_gapless_ids"]},
    {"name": "masking-client-bypassed",
     "issue": "the masking Web API client bypassed",
     "edits": [_off("bot/slack/client.py", 'api_method != "auth.test"')],
     "tests": [SECRETS]},
    {"name": "respond-unmasked",
     "issue": "respond unmasked",
     "edits": [("bot/slack/client.py",
                "            return mask_payload(value, self._secrets)\n",
                "            return value\n")],
     "tests": [SECRETS]},
    {"name": "log-masking-off",
     "issue": "the log filter off",
     "edits": [("bot/logs.py",
                "    logging.setLogRecordFactory(MaskingRecordFactory(secrets, base))\n", ""),
               ("bot/logs.py", "    handler.addFilter(MaskingFilter(secrets))\n", "")],
     "tests": [SECRETS]},
    {"name": "override-adds-no-gate",
     "issue": "an override that adds no gate",
     "edits": [(REQUESTS, "gated = step.gated or bool(override)", "gated = step.gated")],
     "tests": [WHO_MAY]},
    {"name": "succeeded-gated-step-requested-again",
     "issue": "a succeeded gated step requested again",
     "edits": [_off(REQUESTS, 'current and current["state"] == "succeeded" and step.gated '
                              'and not override')],
     "tests": [WHO_MAY]},
    {"name": "users-info-fails-open",
     "issue": "users.info failing open",
     "edits": [("bot/slack/directory.py",
                "            raise DirectoryUnavailable(ACCOUNT_UNAVAILABLE) from e\n"
                "        except Exception as e:  # connection errors, timeouts: same refusal\n"
                "            raise DirectoryUnavailable(ACCOUNT_UNAVAILABLE) from e\n",
                "            return Actor(user_id=user_id)\n"
                "        except Exception:\n"
                "            return Actor(user_id=user_id)\n")],
     "tests": ["tests/scenario/test_membership.py"]},
    {"name": "rollback-without-approval",
     "issue": "rollback without approval",
     "edits": [(RB_REQUESTS, "if not self._deps.rollback_gated:",
                "if True:")],
     "tests": [WHO_MAY]},
    {"name": "queued-step-after-failure-further-up",
     "issue": "a queued step whose requirement failed further up",
     "edits": [(CLAIM, 'failed = repo.failure_since(conn, run_id=exe["run_id"], '
                        'since=exe["queued_at"])', "failed = None")],
     "tests": [LAYERS]},
    # ------------------------------------------------------------ each layer of the claim alone
    {"name": "claim-without-row-lock",
     "issue": "extra: the claim's row lock alone (SKIP LOCKED) removed",
     "edits": [(REPO, *CLAIM_READ)],
     "tests": [LAYERS]},
    {"name": "claim-without-cas",
     "issue": "extra: the claim's compare-and-set on queued alone removed",
     "edits": [(EXECUTIONS, *CLAIM_TABLE)],
     "tests": [LAYERS]},
    {"name": "index-one-live-attempt-per-step",
     "issue": "extra: the 'one live attempt per step' index made non-unique",
     "edits": [(EXACTLY_ONCE, "CREATE UNIQUE INDEX step_executions_one_active",
                "CREATE INDEX step_executions_one_active")],
     "tests": [LAYERS]},
    {"name": "reaper-ignores-heartbeat",
     "issue": "extra: the reaper's heartbeat (lease) check removed",
     "edits": [(EXECUTIONS, ' AND state = \'running\' AND (heartbeat_at IS NULL"\n'
                      '        "   OR heartbeat_at < now() - make_interval(secs => %s)) RETURNING *",\n'
                      "        (now, error, execution_id, lease_s)",
                ' AND state = \'running\' RETURNING *",\n'
                "        (now, error, execution_id)")],
     "tests": [LAYERS]},
    {"name": "failure-holds-nothing",
     "issue": "extra: a failed or interrupted step no longer cancels the queued steps of its run",
     "edits": [(REAPER, "rows = executions.hold_queued(conn,",
                "rows = [] if True else executions.hold_queued(conn,")],
     "tests": [LAYERS]},
    # ------------------------------------------------------------ runbook/rules/approvals.py
    {"name": "approvals-already-decided", "issue": "extra: decide, check 1 (not pending)",
     "edits": [_off(RULE, "request.status != PENDING")], "tests": [APPROVALS]},
    {"name": "approvals-expiry", "issue": "extra: decide, check 2 (expired)",
     "edits": [_off(RULE, "now >= request.expires_at")], "tests": [APPROVALS]},
    {"name": "approvals-params-changed", "issue": "extra: decide, check 3 (parameters changed)",
     "edits": [_off(RULE, "click.current_params_hash != request.params_hash")],
     "tests": [APPROVALS]},
    {"name": "approvals-cancel-by-anyone", "issue": "extra: decide, check 4 (only the requester "
                                                    "cancels)",
     "edits": [_off(RULE, "uid != request.requester")], "tests": [APPROVALS]},
    {"name": "approvals-self-approval", "issue": "extra: is_eligible, self-approval",
     "edits": [_off(RULE, "requester is not None and user.user_id == requester")],
     "tests": [APPROVALS]},
    {"name": "approvals-deactivated", "issue": "extra: is_eligible, deactivated accounts",
     "edits": [_off(RULE, "user.deleted")], "tests": [APPROVALS]},
    {"name": "approvals-bot", "issue": "extra: is_eligible, bot accounts",
     "edits": [_off(RULE, "user.is_bot")], "tests": [APPROVALS]},
    {"name": "approvals-guest", "issue": "extra: is_eligible, guest accounts",
     "edits": [_off(RULE, "user.is_guest")], "tests": [APPROVALS]},
    {"name": "approvals-not-an-approver", "issue": "extra: is_eligible, not an approver",
     "edits": [_off(RULE, "uid not in policy.approvers and not any(uid in m for m in "
                          "policy.groups.values())")], "tests": [APPROVALS]},
    {"name": "approvals-not-in-group", "issue": "extra: is_eligible, not in the request's groups",
     "edits": [_off(RULE, "groups and not any(uid in policy.groups.get(g, frozenset()) for g "
                          "in groups)")], "tests": [APPROVALS]},
    {"name": "approvals-double-vote", "issue": "extra: decide, check 8 (already voted)",
     "edits": [_off(RULE, "uid in request.approvals")], "tests": [APPROVALS]},
    {"name": "approvals-count", "issue": "extra: decide, check 9 (N distinct approvers)",
     "edits": [(RULE, "if len(approvals) >= request.required:", "if len(approvals) >= 1:")],
     "tests": [APPROVALS]},
    # ------------------------------------------------------------ runbook/rules/policy.py
    {"name": "policy-channel", "issue": "extra: policy, the channel check",
     "edits": [_off("runbook/rules/policy.py",
                    "where is not Where.ANYWHERE and channel not in allowed")],
     "tests": [POLICY]},
    {"name": "policy-incident-for-everything", "issue": "extra: policy, incident channels "
                                                        "allowed for every action",
     "edits": [("runbook/rules/policy.py", "(set(rules.incident) if where is Where.CUTOVER_OR_INCIDENT\n"
                                 "                                 else set())",
                "set(rules.incident)")], "tests": [POLICY]},
    {"name": "policy-account", "issue": "extra: policy, the account check (guest/bot/deactivated)",
     "edits": [_off("runbook/rules/policy.py", "refusal in _ACCOUNT_TEXT")], "tests": [POLICY]},
    {"name": "policy-operator", "issue": "extra: policy, the operator check",
     "edits": [_off("runbook/rules/policy.py", "refusal is approvals.Refusal.NOT_AN_APPROVER")],
     "tests": [POLICY]},
    {"name": "policy-unknown-membership-fails-open",
     "issue": "extra: policy, a failed operator lookup counts as an operator",
     "edits": [("runbook/rules/policy.py", "frozenset({uid}) if actor.operator else frozenset()",
                "frozenset({uid}) if actor.operator is not False else frozenset()"),
               _off("runbook/rules/policy.py", "actor.operator is None")], "tests": [POLICY]},
    # ------------------------------------------------------------ the outbox's lease
    {"name": "outbox-lease-ignored", "issue": "extra: outbox, a leased row is claimable again",
     "edits": [("bot/outbox/store.py",
                "AND (o.lease_until IS NULL OR o.lease_until <= %(now)s)", "")],
     "tests": OUTBOX},
    {"name": "outbox-no-skip-locked", "issue": "extra: outbox, the claim's SKIP LOCKED removed",
     "edits": [("bot/outbox/store.py", "FOR UPDATE OF o SKIP LOCKED)", ")")],
     "tests": OUTBOX},
    {"name": "outbox-complete-without-lease",
     "issue": "extra: outbox, a sender records a delivery of a row it no longer holds",
     "edits": [("bot/outbox/store.py",
                '        WHERE id = %(id)s AND leased_by = %(me)s\n        """,\n'
                '        {"ts": ts,',
                '        WHERE id = %(id)s\n        """,\n        {"ts": ts,')],
     "tests": OUTBOX},
    # ------------------------------------------------------------ the replay guard
    {"name": "replay-not-refused", "issue": "extra: the door lets a replayed request through",
     "edits": [_off("bot/door.py", "inbox_id is None")], "tests": REPLAY},
    {"name": "replay-key-unique-per-request",
     "issue": "extra: the replay key no longer depends only on timestamp and signature",
     "edits": [("bot/ingress.py", 'f"{ts}:{sig}".encode()', 'f"{ts}:{sig}:{id(headers)}".encode()')],
     "tests": REPLAY},
    # ------------------------------------------------------------ the audit HMAC
    {"name": "audit-hmac-ignores-key", "issue": "extra: audit, rows hashed without the key",
     "edits": [("bot/audit/chain.py", "if key is None:", "if True:")],
     "tests": [AUDIT]},
    {"name": "audit-verify-accepts-keyless-rows-after-keyed",
     "issue": "extra: audit verify accepts an unkeyed row after keyed ones",
     "edits": [_off("bot/audit/chain.py", "self.keyed_seen")], "tests": [AUDIT]},
    {"name": "audit-verify-accepts-all-keyless-log",
     "issue": "extra: audit verify accepts a log with no keyed row (a keyless rewrite)",
     "edits": [_off("bot/audit/chain.py", "self.first is not None and not self.keyed_seen")],
     "tests": [AUDIT]},
    {"name": "audit-verify-ignores-head", "issue": "extra: audit verify ignores the kept head",
     "edits": [("bot/audit/chain.py", "elif prev[1] != head:", "elif False:")], "tests": [AUDIT]},
    # ------------------------------------------------------------ a stopped rollback
    {"name": "rollback-resume-reruns-done-steps",
     "issue": "extra: resuming a stopped rollback queues the whole plan again, re-running the "
              "steps that already succeeded",
     "edits": [(RB_PLANNER, "return plan[ids.index(frm):] if frm in ids else plan",
                "return plan")],
     "tests": [f"{RESUME}::test_retry_resumes_at_the_failed_step_after_approval_without_"
               "rerunning_the_done_ones"]},
    {"name": "rollback-mark-done-one-person",
     "issue": "extra: Mark done of a failed rollback step takes effect without a second approver",
     "edits": [(RECOVERY, "if not (step.gated or (rollback and self._deps.rollback_gated)):",
                "if not step.gated:")],
     "tests": [f"{RESUME}::test_a_failed_step_stops_the_rollback_and_mark_done_by_two_people_"
               "continues_it"]},
    {"name": "rollback-stops-here-always",
     "issue": "extra: the _stops_here check removed: Retry and Mark done on an old run's "
              "timeline act on it (or on the new run)",
     "edits": [(RB_PLANNER, 'return stopped is not None and stopped["exe"]["id"] == exe["id"]',
                "return True"),
               _off(RB_PLANNER, 'run is None or run["id"] != exe["run_id"]')],
     "tests": [OUTSIDE_ROLLBACK]},
    {"name": "rollback-resume-approval-outlives-its-stop",
     "issue": "extra: a resume approved after the rollback's stopping point moved still queues "
              "(the approval is no longer void, and the queue no longer re-checks the stop)",
     "edits": [(RB_PLANNER, 'return a["params_hash"] if stopped and stopped["at"].id == frm '
                             'else',
                'return a["params_hash"] if True else'),
               _off(RB_REQUESTS, 'stopped is None or stopped["at"].id != frm')],
     "tests": [RESUME, OUTSIDE_ROLLBACK]},
    {"name": "break-glass-invisible-reason",
     "issue": "extra: break-glass accepts a reason made of invisible characters",
     "edits": [(RB_REQUESTS, "break_glass_allowed(named, _readable(reason), config,",
                "break_glass_allowed(named, reason, config,")],
     "tests": [f"{OUTSIDE_POLICY}::test_break_glass_needs_a_reason_a_person_can_read"]},
    {"name": "break-glass-short-reason",
     "issue": "extra: break-glass accepts a reason shorter than min_reason_chars",
     "edits": [_off("runbook/break_glass.py", "len(text) < config.min_reason_chars")],
     "tests": ["tests/unit/test_break_glass.py"]},
    # ------------------------------------------------------------ what reaches Slack
    {"name": "post-bucket-unlimited-burst",
     "issue": "extra: the per-channel post bucket allows an unlimited burst of new messages",
     "edits": [("bot/outbox/pacing.py", "self.burst = max(1, burst)", "self.burst = 10**9")],
     "tests": ["tests/integration/test_outbox.py::test_new_cards_go_out_in_a_burst_then_one_"
               "per_second"]},
    {"name": "reject-reason-unescaped",
     "issue": "extra: a reject reason is echoed unescaped (a typed <!channel> pings)",
     "edits": [(RULE, 'reason = click.reason.strip().replace("&", "&amp;").replace("<", "&lt;")'
                      '.replace(">", "&gt;")', "reason = click.reason.strip()")],
     "tests": [APPROVALS]},
    {"name": "canary-reason-unescaped",
     "issue": "extra: a canary NO-GO reason or note is shown unescaped (a typed <!channel> "
              "pings)",
     "edits": [("bot/canary/cards.py", "    out = esc(text)\n", "    out = text\n")],
     "tests": ["tests/scenario/test_outside_canary.py::test_a_no_go_reason_never_pings_the_"
               "channel"]},
    # ------------------------------------------------------------ issue 23: survivors of an
    # outside check (36 bugs written without reading this file; these 10 left the suite green)
    {"name": "claim-skips-preflight-gate",
     "issue": "issue 23: the preflight gate kept at request time but skipped at claim time (a "
              "step approved before the preflight went stale still runs)",
     "edits": [_off(CLAIM, "gate")],
     "tests": [f"{GUARDED}::test_a_step_approved_on_a_fresh_preflight_does_not_start_once_it_"
               "went_stale"]},
    {"name": "finish-abort-under-running-step",
     "issue": "issue 23: /golive finish --abort closes the run while a step is still running",
     "edits": [(RUNS, "            if running:\n", "            if running and not abort:\n")],
     "tests": [f"{GUARDED}::test_finish_abort_is_refused_while_a_step_is_running"]},
    {"name": "mark-done-failed-cutover-step",
     "issue": "issue 23: a FAILED cutover step (not just an interrupted one) can be marked done",
     "edits": [_off(RECOVERY, 'exe["state"] == "failed" and not rollback')],
     "tests": [f"{GUARDED}::test_a_failed_cutover_step_cannot_be_marked_done"]},
    {"name": "break-glass-unknown-trigger-as-manual",
     "issue": "issue 23: a trigger id not in the runbook (--trigger security-made-up) is taken "
              "as a manual declaration instead of refused",
     "edits": [(RB_REQUESTS, "triggers=None if found else triggers)",
                "triggers=None)")],
     "tests": [f"{GUARDED}::test_break_glass_naming_a_trigger_the_runbook_does_not_have_is_"
               "refused"]},
    {"name": "preflight-of-another-rc-sha",
     "issue": "issue 23: preflight results recorded for another RC SHA open the gate",
     "edits": [("bot/engine/preflight.py", ' and r["rc_sha"] == sha}', "}")],
     "tests": [f"{GUARDED}::test_a_green_preflight_of_another_rc_does_not_open_the_gate"]},
    {"name": "replay-remembered-one-second",
     "issue": "issue 23: remembered signatures are forgotten after 1 s instead of twice Slack's "
              "5-minute window",
     "edits": [("bot/door.py", "purge = ingress.REPLAY_WINDOW_S * 2 if", "purge = 1 if")],
     "tests": [f"{GUARDED}::test_a_request_captured_minutes_ago_is_still_refused_by_a_fresh_"
               "replica"]},
    {"name": "inbox-handles-a-settled-request-again",
     "issue": "issue 23: a request already handled (done or dropped) is handled again when "
              "redispatched",
     "edits": [("bot/inbox.py", '" id = %s AND state = \'new\' RETURNING id",',
                '" id = %s RETURNING id",')],
     "tests": [f"{GUARDED}::test_a_request_already_handled_is_not_handled_again_when_"
               "redispatched",
               f"{GUARDED}::test_a_request_dropped_after_a_database_failure_is_never_applied_"
               "late"]},
    {"name": "batch-replies-before-its-commit",
     "issue": "issue 19: a batch's replies go out before the batch commits (a crash before the "
              "commit would leave a person answered for a request handled again)",
     "edits": [("bot/inbox.py", "        if batch is None:\n            fn()\n",
                "        if True:\n            fn()\n")],
     "tests": ["tests/integration/test_inbox_batch.py::test_a_batch_commits_once_and_a_"
               "failure_rolls_back_only_its_own_request"]},
    {"name": "batch-first-request-commits-alone",
     "issue": "issue 19: the batch's transaction is not opened before its first request, whose "
              "savepoint then becomes a transaction of its own and commits alone",
     "edits": [("bot/inbox.py", '                conn.execute("SELECT 1")\n', "")],
     "tests": ["tests/integration/test_inbox_batch.py::test_a_batch_the_database_fails_"
               "commits_nothing_says_nothing_and_hands_each_back"]},
    {"name": "redact-misses-url-encoded-secret",
     "issue": "issue 23: a secret that appears URL-encoded (in a logged URL) is not masked",
     "edits": [("runbook/adapters/redact.py",
                'out = {value, quote(value, safe=""), unquote(value)}',
                "out = {value, unquote(value)}")],
     "tests": [f"{GUARDED}::test_a_secret_shown_url_encoded_is_masked"]},
    {"name": "watch-stop-overridden-by-leader",
     "issue": "issue 23: after traffic opens, a person's /golive watch stop is overridden by "
              "the leader every second",
     "edits": [("bot/watches/room.py", "only_if_unset=True)", "only_if_unset=False)")],
     "tests": ["tests/watches_shell/test_watch_stop_holds.py"]},
    {"name": "canary-old-check-overwrites-newer-report",
     "issue": "issue 23: a slow ledger check of an older reference overwrites the result of a "
              "newer report",
     "edits": [("bot/canary/room.py", " or it.reference != v.reference:", ":")],
     "tests": ["tests/canary/test_canary_stale_check.py"]},
    # ------------------------------------------------------------ issue 19: one pipeline
    {"name": "socket-redelivery-handled-again",
     "issue": "issue 19: an envelope Slack sends again (same envelope id) gets a new replay key "
              "and is handled a second time",
     "edits": [("bot/socket_door.py", 'f"socket:{envelope_id}".encode()',
                'f"socket:{envelope_id}:{time.time()}".encode()')],
     "tests": ["tests/scenario/test_socket_mode.py::test_an_envelope_slack_sends_again_is_"
               "acked_and_takes_effect_once"]},
    {"name": "slack-lookup-inside-the-transaction",
     "issue": "issue 19: who clicked or typed is looked up in Slack inside the request's inbox "
              "transaction, holding its row lock across the network call",
     "edits": [("bot/listeners.py", "        try:\n            got = self.facts(action, user)",
                "        return lambda: self.facts(action, user)\n"
                "        try:\n            got = self.facts(action, user)")],
     "tests": ["tests/reliability/test_delivery.py::test_a_slow_slack_lookup_holds_no_lock_on_"
               "the_request", "tests/reliability/test_delivery.py::test_a_slow_slack_lookup_"
               "holds_no_lock_on_a_click"]},
    # ------------------------------------------------------------ issue 19: what a user noticed
    {"name": "help-refused-outside-the-cutover",
     "issue": "issue 19: /golive help is refused outside the cutover and incident channels",
     "edits": [("runbook/rules/policy.py", "EntryPoint.HELP: Rule(Where.ANYWHERE,",
                "EntryPoint.HELP: Rule(Where.CUTOVER_OR_INCIDENT,")],
     "tests": [f"{WHO_MAY}::test_help_answers_anywhere_only_the_asker_and_says_where_the_"
               "commands_work"]},
    {"name": "canary-report-mentions-not-names",
     "issue": "issue 19: the canary report file shows <@U…> mentions instead of display names",
     "edits": [("bot/canary/room.py", "        return self.directory.display_names(people)",
                "        return {}")],
     "tests": ["tests/canary/test_canary_slack.py::test_happy_path_to_go_with_report_file_and_"
               "chart"]},
    {"name": "canary-webhooks-count-ledger-ids",
     "issue": "issue 19: the report's webhook line lists the ledger's transaction ids beside "
              "the canary's references",
     "edits": [("bot/canary/room.py", 'state.items["withdrawal"].reference)\n',
                'state.items["withdrawal"].reference,\n'
                '                            state.items["deposit"].details.get("transaction_id"))'
                '\n')],
     "tests": ["tests/canary/test_canary_slack.py::test_happy_path_to_go_with_report_file_and_"
               "chart"]},
    {"name": "evidence-pack-renames-the-chart",
     "issue": "issue 19: the evidence pack holds the chart as canary-chart.png while its report "
              "links canary-chart-run1.png",
     "edits": [("bot/dev/rehearse/evidence.py", "            files[name] = content",
                '            files["canary-chart.png"] = content')],
     "tests": ["tests/unit/test_evidence_pack.py"]},
    # ------------------------------------------------------------ issue 21: the autopilot,
    # guided failure, deadlines; the door-only inbox (issue 19)
    {"name": "autopilot-two-drivers-without-row-lock",
     "issue": "issue 21: the tick reads the run's autopilot row without FOR UPDATE SKIP LOCKED, "
              "so two replicas drive one run at once and request the same step twice",
     "edits": [("bot/autopilot/store.py", " FOR UPDATE OF a SKIP LOCKED", "")],
     "tests": [f"{AUTOPILOT}::test_two_drivers_at_once_make_one_set_of_requests",
               f"{AUTOPILOT}::test_while_another_process_drives_the_run_this_one_requests_"
               "nothing"]},
    {"name": "autopilot-gated-step-queued-unapproved",
     "issue": "issue 21: a gated step the autopilot requests (on someone's behalf) is queued as "
              "if approved instead of asking for its approval",
     "edits": [(REQUESTS, "gated = step.gated or bool(override)",
                "gated = (step.gated and not actor.via) or bool(override)")],
     "tests": [AUTOPILOT]},
    {"name": "decision-non-owner-choice-counts",
     "issue": "issue 21: once an operator took a decision card, another operator's choice "
              "(Hold, Roll back, ...) still counts",
     "edits": [_off(GUIDED, "owner != user")],
     "tests": [f"{DECISION_CARD}::test_take_it_then_another_operators_clicks_are_refused_and_"
               "audited"]},
    {"name": "skip-approved-by-its-asker",
     "issue": "issue 21: a Skip is approved by the person who asked for it (no second person)",
     "edits": [_off(GUIDED, "approver == owner")],
     "tests": [f"{DECISION_CARD}::test_skip_needs_a_reason_and_a_second_person_and_is_a_"
               "deviation"]},
    {"name": "door-role-runtime-keeps-inbox-insert",
     "issue": "issue 19: migration 0014 no longer revokes the inbox's INSERT from the runtime "
              "role, so the work side (or whoever holds its credential) can forge a request",
     "edits": [("bot/store/migrations/versions/0014_door_role.py",
                '        REVOKE INSERT ON inbox FROM "{runtime}";\n', "")],
     "tests": ["tests/integration/test_door_role.py::test_the_runtime_role_cannot_write_an_"
               "inbox_row"]},
    {"name": "approval-expiry-ignores-deadline",
     "issue": "issue 21: an approval request expires at [approvers] expiry_minutes instead of "
              "its step's deadline (deadline_minutes, extended for the backup group)",
     "edits": [("bot/engine/expiry.py",
                "    return rule.final_deadline(approval_open(step, opened_at=now, config=config,"
                "\n                                             default=default))",
                "    return now + default")],
     "tests": ["tests/decisions/test_decision_deadlines.py::test_an_approval_expires_at_its_"
               "deadline_not_at_expiry_minutes"]},
]

# Mutations whose only catching tests need Docker (the sample stack and the registry). run.py
# runs `-m "not docker"` and never reads this list; each was checked by hand (README.md: how).
PLAN_BIND = "tests/plan/test_plan_bind.py"
DOCKER_ONLY: list[dict] = [
    {"name": "claim-ignores-plan-drift",
     "issue": "issue 20: the claim compares the approval's hash with the approved step digest "
              "instead of the one recomputed before the claim: a plan that moved after the "
              "approval (a re-pushed tag, a moved database revision) still runs",
     "edits": [(CLAIM, "plan = self._drift.claim_digest(exe, a, fresh)",
                'plan = a["params"].get("plan")')],
     "tests": [f"{PLAN_BIND}::test_a_tag_moved_between_approval_and_claim_voids_the_approval_"
               "naming_both_digests"]},
    {"name": "certification-failure-ignored",
     "issue": "issue 20: a step whose effect is not certified (what runs differs from the "
              "approved plan) is recorded as succeeded",
     "edits": [_off("bot/engine/worker.py", "cert is not None and not cert.certified")],
     "tests": [f"{PLAN_BIND}::test_a_container_replaced_before_the_certification_fails_the_"
               "deploy"]},
]
