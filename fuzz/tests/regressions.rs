//! Inputs the fuzzers found, replayed through their targets. Each test names what went wrong
//! and checks the input now gets the answer it should.
use ylambda_fuzz::{panics, targets};

fn replay(target: &str, input: &[u8]) {
    panics::install_quiet_hook();
    let target = targets::find(target).expect("a target");
    if let Err(message) = panics::run_caught(|| (target.run)(input)) {
        panic!("{}: {message}", target.name);
    }
}

/// Found by the mutation driver on the `jwt` target (a harness bug, not a server bug): claims
/// with invalid UTF-8 inside the string value of an unknown claim. jsonwebtoken (serde_json into
/// `Claims`) skips unknown claims without checking their UTF-8, so the token is valid; the
/// target's own JSON check refused it and called the acceptance a crash. Then afl found the same
/// with an unknown claim holding a number out of `f64` range (`"xp":4102E44800`). The target now
/// reads the claims as the server does: into a struct, skipping the others.
#[test]
fn invalid_utf8_in_an_unknown_claim_is_ignored_like_the_claim() {
    let input = b"S\n{\"alg\":\"HS256\"}\n{\"exp\":4102444800,\"room\":\"notes\",\"accesw\":\"\xa8\x40\xe8\xce\x61dmin\"}";
    replay("jwt", input);
    replay(
        "jwt",
        b"S\n{\"alg\":\"HS256\"}\n{\"exp\":4102444800,\"room\":\"notes\",\"xp\":4102E44800}",
    );
    // The server accepts it: the unknown claim is ignored, the token opens the room, read-write.
    let token = signed_token(&input[2..]);
    let verifier = ylambda_shared::auth::Verifier::hs256(targets::JWT_SECRET);
    let grant = futures::executor::block_on(verifier.verify(Some(&token), targets::JWT_ROOM))
        .expect("a valid token");
    assert!(!grant.readonly);
    assert_eq!(grant.expires_at, 4_102_444_800);
}

/// `header\nclaims` signed as the `jwt` target signs them.
fn signed_token(rest: &[u8]) -> String {
    use base64::Engine;
    let at = rest.iter().position(|&b| b == b'\n').expect("two parts");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!(
        "{}.{}",
        b64.encode(&rest[..at]),
        b64.encode(&rest[at + 1..])
    );
    let key = jsonwebtoken::EncodingKey::from_secret(targets::JWT_SECRET).expect("key");
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .expect("sign");
    format!("{message}.{signature}")
}

/// Found by afl on the `on_message` target: an update that yrs decodes and applies (so
/// `validate_update` accepted it and the room stored it), but that yrs' update-level encoder
/// (`diff_updates_v1`, which answers every sync step 1, and `merge_updates_v1`, which
/// compaction uses) turns into bytes yrs cannot decode: the server then sent every client an
/// update it cannot read, and read_state reported the room's document as unreadable. One String
/// item with an origin, whose text holds 4-byte UTF-8 (`😀`, two UTF-16 units), then an Any item.
/// `validate_update` now also requires that re-encoding to decode, so the update is refused
/// before it is stored.
const DIFF_BREAKS_IT: &str = "010330308430300c3030c3b630303030f09f988046303004303030300474727565b230300105303030303004303030300130013030";

#[test]
fn an_update_yrs_cannot_re_encode_is_refused_before_it_is_stored() {
    let update = hex(DIFF_BREAKS_IT);
    assert!(
        matches!(
            ylambda_shared::doc::validate_update(&update),
            Err(ylambda_shared::doc::DocError::InvalidUpdate(_))
        ),
        "{:?}",
        ylambda_shared::doc::validate_update(&update)
    );
    // The minimized script: c0 sends it as an update, then c1 asks for the room's state.
    let mut script = b"\n#\n\x04\x00\x02\x35".to_vec();
    script.extend_from_slice(&update);
    script.extend_from_slice(b"\n#\n\n#\n\x09\x00\x00\x01\x00");
    replay("on_message", &script);
}

/// The input at `regressions/{relative}` in this crate.
fn regression_input(relative: &str) -> Vec<u8> {
    let path = format!("{}/regressions/{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("regression input {path}: {e}"))
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Replays `regressions/update/{name}` on the `update` target after checking that
/// `validate_update` refuses its update as invalid, for a reason containing `why`.
fn refused_update(name: &str, why: &str) {
    let input = regression_input(&format!("update/{name}"));
    // The target's input: a piece-size knob, then the update.
    match ylambda_shared::doc::validate_update(&input[1..]) {
        Err(ylambda_shared::doc::DocError::InvalidUpdate(reason)) => {
            assert!(reason.contains(why), "{name}: {reason}")
        }
        other => panic!("{name}: {other:?}"),
    }
    replay("update", &input);
}

/// Found by afl on the `update` target in the long run (164 inputs, mutations of the
/// `rich-state` seed with 53-bit client ids: 144 were a harness false positive, these 20 real).
/// yrs accepted each update; cutting yrs' own encoding of it with `split_update_v1` gave pieces
/// that (a) built another document than the whole, (b) included one yrs refuses ("block parent
/// ... must be deleted or shared ref type"), or (c) did not all apply. Each has an item that names
/// what no document could hold: a parent later in its own client's clock (a cycle: yrs keeps it
/// pending forever, unchecked), or a parent that is an Any item. The server cut a room's state
/// this way for sync step 2 answers over the message limit. `validate_update` now refuses such
/// updates before they are stored (`split::check_references`), so the target returns early.
#[test]
fn an_update_naming_impossible_structs_is_refused_before_it_is_split() {
    for (name, why) in [
        ("split-content-differs", "which is not before it"),
        ("split-piece-invalid", "not a type"),
        ("split-pieces-do-not-apply", "which is not before it"),
    ] {
        refused_update(name, why);
    }
}

/// Found by afl on the `update` target (second long run, with the check above in place): updates
/// yrs applies, whose diff re-encoding is fine, but which the document they make encodes as
/// bytes yrs cannot decode (a JSON item's count) or with an item naming itself. The server merges
/// more than 64 updates through a `Doc`, so such an update would break a room's state.
/// `validate_update` now also decodes and checks the throwaway document's own encoding.
#[test]
fn an_update_whose_document_encodes_badly_is_refused() {
    for name in ["doc-encoding-undecodable", "doc-encoding-names-itself"] {
        refused_update(name, "");
    }
}

/// Found by afl on the `update` target (second long run): updates whose sync step 2 pieces fail
/// to apply, because a piece starts at a clock near 2^31, or holds part of a cut JSON item (yrs
/// 0.28.1 reads JSON content with one string more than its count), or whose pieces build another
/// document than the whole (an item with a missing parent, then a later clock of its client, at
/// clocks past 2^31). No Yjs 13 or yrs client writes any of them (Yjs 13 writes Any content; no
/// editing session reaches 2^30 insertions of one client), so `check_references` now refuses
/// clocks from 2^30 and JSON content. (Since the third run the update as sent is checked too, so
/// these are now refused earlier, some for other reasons: an over-long var-int, which yrs
/// reads leniently, and a zero-length struct.)
#[test]
fn an_update_past_the_clock_limit_or_with_json_content_is_refused() {
    for (name, why) in [
        ("clock-near-2-31-piece-fails", "var-int over 64 bits"),
        ("json-content-cut", ""),
        ("pending-gap-rebuilds-differently", ""),
    ] {
        refused_update(name, why);
    }
}

/// Found by afl on the `update` target (third long run, 5 of its 25 inputs): an Any item of 12
/// elements under a map key (its key inherited from its origin). Yjs writes one value per item
/// under a key, but yrs accepts more; cut into parts that arrive as separate updates, each later
/// part overwrote (deleted) the one before it, so the pieces built another document than the
/// whole. The splitter now keeps map entries whole (`parse::keep_map_entries_whole`).
#[test]
fn a_map_entry_of_several_elements_is_never_cut() {
    let input = regression_input("update/map-entry-cut");
    ylambda_shared::doc::validate_update(&input[1..]).expect("yrs accepts it, and so do we");
    replay("update", &input);
}

/// Found by afl (third long run) on the `ywebsocket` target: 13 frames whose update holds an
/// item of length 0 (deleted content of length 0 at a clock the next item takes too). yrs
/// 0.28.1 applied it, then read freed memory while encoding the document (`validate_update`'s
/// own check): a segfault or an absurd allocation, which abort the process past any panic guard.
/// And on `update`: 36 inputs whose pieces built another document, all of them updates that
/// break a rule of `check_references` as sent (the rules were checked only on yrs' re-encodings,
/// which hide it). `validate_update` now runs `check_references` on the update as sent, before yrs
/// integrates it, and the reader refuses items of length 0.
#[test]
fn an_update_yrs_would_corrupt_itself_on_is_refused_as_sent() {
    use ylambda_shared::protocol::ywebsocket::{decode_messages, Incoming};
    let frame = regression_input("ywebsocket-zero-length-item-segfault");
    let messages = decode_messages(&frame).expect("a frame");
    let refused = messages.iter().any(|m| match m {
        Incoming::SyncStep2(u) | Incoming::Update(u) => {
            ylambda_shared::doc::validate_update(u).is_err()
        }
        _ => false,
    });
    assert!(refused, "the zero-length item is refused");
    replay("ywebsocket", &frame);
    for name in ["pending-deletes-rebuild-differently", "raw-update-refused"] {
        refused_update(name, "");
    }
}

/// Found by afl on the `ywebsocket` target (fourth long run): frames whose update writes a
/// client in two sections (Yjs and yrs write each client once). yrs decodes them into structs
/// with overlapping clocks; encoding the document they make then read freed memory (an
/// allocation of 6 * 10^18 bytes: an abort no panic guard catches) or took over a minute.
/// `check_references` now refuses a client written twice.
#[test]
fn an_update_writing_a_client_twice_is_refused() {
    use ylambda_shared::protocol::ywebsocket::{decode_messages, Incoming};
    for name in [
        "ywebsocket-client-twice-abort",
        "ywebsocket-client-twice-slow",
    ] {
        let frame = regression_input(name);
        let messages = decode_messages(&frame).expect("a frame");
        let refusals: Vec<String> = messages
            .iter()
            .filter_map(|m| match m {
                Incoming::SyncStep2(u) | Incoming::Update(u) => {
                    ylambda_shared::doc::validate_update(u)
                        .err()
                        .map(|e| e.to_string())
                }
                _ => None,
            })
            .collect();
        assert!(
            refusals.iter().any(|r| r.contains("more than one section")),
            "{name}: {refusals:?}"
        );
        replay("ywebsocket", &frame);
    }
}

/// Found by afl on the `update` target (fourth long run, 2026-12-05): 14 bytes (a count of
/// 2^28-odd clients) that yrs' decoder answered by reserving ~500 MB and a quarter of a second
/// before failing, and afl recorded as hangs. `validate_update` now reads an update with the
/// crate's strict reader (`check_references`) before yrs reads it, and refuses it there.
#[test]
fn an_update_whose_counts_its_bytes_cannot_hold_is_refused_before_yrs_reads_it() {
    refused_update("counts-reserve-500-mb", "unexpected end of input");
}

/// Found by afl on the `update` target (third to fifth long runs, 94 inputs, one kind): yrs'
/// own encoding of an accepted update, cut into sync step 2 pieces, built another document than
/// the whole. Each holds structs that cannot integrate (a gap in a client's clocks, a parent of
/// a client nobody has), which yrs keeps pending; how much of the rest it then integrated
/// depended on whether they arrived in one update or several (an item whose left origin is a
/// map entry, or a map entry overwritten in the same update while the delete set says the older
/// value is live, was integrated from the pieces and deleted the entry's value, and stayed
/// pending in the whole). No Yjs client writes one, but a writer could make peers that get a
/// state in pieces see another document than those that get it whole. The server now cuts
/// such a state around its pending structs (`doc::answer_sync_step1`, `integrates_whole`,
/// ARCHITECTURE.md invariant 26): what integrates, cut, then the pending structs in one update.
/// One input also overflowed a clock in a debug build of yrs while encoding the pending
/// structs; yrs is built as the Lambdas ship it now (Cargo.toml), and the target no longer
/// encodes them.
#[test]
fn a_state_with_pending_structs_is_cut_around_them() {
    for name in [
        "live-map-entry-overwritten-in-pieces",
        "pending-structs-rebuild-differently",
        "origin-on-map-entry-rebuilds-differently",
        "pending-pieces-overflow-yrs-debug",
    ] {
        replay("update", &regression_input(&format!("update/{name}")));
    }
}

/// Found by afl on the `update` target (sixth long run, 2026-12-06, 5 inputs, one kind): a map
/// entry of 9 units (text under a key, its key inherited from its origin), and a formatting item
/// whose left origin lies inside it, right of its right origin. yrs applied the update, but
/// integrating yrs' own encoding of the document it made gave another document (more deleted),
/// and the sync step 2 pieces of that encoding yet another. `check_references` now refuses an
/// item that names the inside of a live map entry (Yjs writes one value per entry, and a new value
/// names the last unit of the one before).
#[test]
fn an_update_whose_encoding_rebuilds_another_document_is_refused() {
    refused_update(
        "format-crossing-origins-rebuilds-differently",
        "names the inside of a live map entry of 9 units",
    );
}

/// Found by afl on the `on_message` target (fourth long run, 6 inputs and 35 more of the same
/// kind after the fixes): an update whose item names, as its parent, a String item of an earlier
/// update in the room. `check_references` cannot judge a parent outside the update, so each
/// update validated alone; merged (a sync step 2 answer, or compaction), the room's state held an
/// item under a String parent, which the server's own `validate_update` refused (and posted to
/// peers all the same), and on some inputs yrs panicked while merging, so the room's state could
/// no longer be read. The merge now writes such items as GC first, as Yjs integrates them.
#[test]
fn an_item_under_a_string_item_of_an_earlier_update_merges_as_gc() {
    for name in [
        "parent-is-a-string-item-of-an-earlier-update",
        "parent-is-a-string-item-of-another-client",
    ] {
        replay(
            "on_message",
            &regression_input(&format!("on_message/{name}")),
        );
    }
}

/// Found by afl on the `on_message` target (fourth long run, 8 inputs, one kind): updates each
/// valid alone whose merge (Format items with crossing origins, then a delete set over them) Yjs
/// and a release build of yrs 0.28.1 apply, but on which yrs' length bookkeeping overflows in a
/// debug build (a panic in `TransactionMut::delete`): the target saw a posted update fail to
/// validate. The Lambdas ship a release build, and yrs is now built without its debug checks in
/// every profile (Cargo.toml), so tests and fuzzing run the yrs that ships; the server's own
/// merges had already stopped depending on it (`doc::merge` falls back to the update-level merge).
/// The seventh run found one more (`-afl-build`): cargo-afl turns the checks back on for every
/// crate through RUSTFLAGS, so the afl build now goes through `scripts/afl-rustc.sh`.
#[test]
fn a_merge_only_a_debug_build_of_yrs_overflows_on_is_served() {
    for name in [
        "crossing-origins-overflow-yrs-debug",
        "crossing-origins-overflow-yrs-debug-afl-build",
    ] {
        replay(
            "on_message",
            &regression_input(&format!("on_message/{name}")),
        );
    }
}

/// Found by afl on the `update` target (sixth long run, 2026-12-06, 8 inputs, one kind): a map
/// entry whose content is two units long (Yjs writes one value per entry; yrs reads more), named
/// in its middle by a formatting item's right origin, next to an item that stays pending (a
/// client nobody has). The sync answer was cut around the pending item (invariant 26), but the
/// document the pieces built had the entry split in two, and yrs read the second half,
/// integrated again, as a new value of that key that deleted the first. `check_references` now
/// refuses an item that names the inside of a live map entry. (A first rule, refusing live
/// entries of several units, made the pieces of honest deleted entries fail validation: their
/// delete set travels in a piece of its own. afl found that in minutes. A second, refusing any
/// entry named inside, refused what Yjs writes when two clients set one key: see
/// `shared/src/doc/split/tests/map_entries.rs`.)
#[test]
fn an_item_naming_the_inside_of_a_map_entry_is_refused() {
    refused_update(
        "map-entry-split-by-a-pending-item",
        "names the inside of a live map entry of 2 units",
    );
}

/// Found by afl on the `on_message` target (sixth long run, 52 inputs, one kind): an update whose
/// item names as parent `<1#0>` before any update holds `<1#0>` (pending, as in Yjs); compaction
/// moves it into the snapshot; then `<1#0>` arrives as a String. The merge checked only log
/// items against the snapshot, so the merged state held an item under a String parent, which
/// the server's own validator refused. The merge now also reads the snapshot's items when the
/// log holds content that cannot be a parent.
///
/// The seventh run found 196 more (`...-another-update-holds-as-a-string`) against a flag that
/// compaction stored with each snapshot so that the snapshot was read only while an item of it
/// waited for an absent parent (b10f8e2, reverted): a snapshot item's parent ID can also be held
/// by a log struct of another kind, so the flag cannot tell when the snapshot is safe to skip.
#[test]
fn a_snapshot_item_whose_string_parent_arrives_later_merges_as_gc() {
    for name in [
        "snapshot-item-under-a-string-parent-sent-later",
        "snapshot-item-whose-parent-id-another-update-holds-as-a-string",
    ] {
        replay(
            "on_message",
            &regression_input(&format!("on_message/{name}")),
        );
    }
}

/// Found by afl on the `on_message` target (seventh long run, 2 inputs, and 10 more on the code
/// of stop 25): `check_references` refuses an item that names the inside of a live map entry of
/// its own update, but not of another update in the room. Each update validated alone; their
/// merge named the inside of a live entry, which the server's own validator refused in the
/// state it sent. The merged state now gets such items as GC (invariant 27,
/// `split::gc_items_naming_live_entries`).
#[test]
fn an_item_naming_the_inside_of_another_updates_live_map_entry_merges_as_gc() {
    replay(
        "on_message",
        &regression_input("on_message/an-item-naming-the-inside-of-another-updates-live-map-entry"),
    );
}

/// Found by afl on the `on_message` target (eighth long run, 1 input): 55 KB sent in 64-byte
/// pieces, more than the 1,000 messages in 10 s a connection may send. The handler closed the
/// connection for the rate (`PolicyViolation`), as it should; the harness took any error but
/// `BadRequest` for a crash. A harness false positive: it now takes both.
#[test]
fn more_frames_than_the_message_rate_allows_close_the_connection() {
    replay(
        "on_message",
        &regression_input("on_message/more-frames-than-the-message-rate-allows"),
    );
}

/// Found by afl on the `update` target (ninth run, 12 inputs, one kind, minutes after the map
/// entry rule of 4d9817b): a map entry of several units that kept its content, deleted by the
/// update's delete set, named inside by another item, and all of it pending (its parent is in
/// no update). The sync answer sent the pending structs and the pending deletions as two
/// updates, so the first held an entry that looked live, and was refused. They now travel
/// together in one update.
#[test]
fn a_pending_deleted_map_entry_travels_with_its_deletion() {
    for name in [
        "pending-deleted-map-entry-named-inside",
        "pending-deleted-map-entry-of-3-units-named-inside",
    ] {
        replay("update", &regression_input(&format!("update/{name}")));
    }
}
