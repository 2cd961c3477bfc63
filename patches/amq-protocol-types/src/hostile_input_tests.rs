//! PATCH (lcm-worker): tests of the parser on hostile input (see PATCH.md).
//!
//! On the pristine 10.6.3 parser the short-string tests fail with a parse error
//! and the deep-nesting tests abort the test process with a stack overflow.

use crate::{
    generation::gen_field_table,
    parsing::{MAX_NESTING_DEPTH, parse_field_table, parse_short_string, parse_value},
    *,
};
use cookie_factory::r#gen as cf_gen;

const EMPTY: &[u8] = b"";
const FFFD: char = char::REPLACEMENT_CHARACTER;

/// The stack of the threads the deep-nesting tests run on. The patched parser
/// needs at most ~130 KiB (release) / ~640 KiB (debug) whatever the depth
/// (measured in PATCH.md); the pristine one needs ~1.9 KB (release) / ~10 KB
/// (debug) a level, so ~5.6 MB for 3,000 levels: 1 MiB tells them apart in
/// both profiles, and is half the 2 MiB of lapin's io-loop thread.
const TEST_STACK: usize = 1024 * 1024;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(TEST_STACK)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

fn short(bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![bytes.len() as u8];
    v.extend_from_slice(bytes);
    v
}

fn long(bytes: &[u8]) -> Vec<u8> {
    let mut v = (bytes.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

#[test]
fn non_utf8_short_strings_are_decoded_lossily() {
    for (bytes, expected) in [
        (&b"\xff\xfe-bad"[..], "\u{FFFD}\u{FFFD}-bad"), // correlation_id
        (b"q\xff", "q\u{FFFD}"),                        // reply_to
        (b"\xff", "\u{FFFD}"),                          // type
        (b"\xc3\x28", "\u{FFFD}("),                     // a header key
        (b"ok", "ok"),
    ] {
        let mut input = short(bytes);
        input.push(0x42); // the next field is left alone
        assert_eq!(
            parse_short_string(&input[..]),
            Ok((&[0x42][..], ShortString::from(expected))),
            "{bytes:x?}"
        );
    }
}

#[test]
fn a_lossy_short_string_stays_within_255_bytes_and_keeps_its_marker() {
    // 255 invalid bytes would become 765 bytes of U+FFFD.
    let (_, s) = parse_short_string(&short(&[0xff; 255])[..]).unwrap();
    assert_eq!(s.as_str().len(), 255);
    assert!(s.as_str().chars().all(|c| c == FFFD));
    // The only invalid byte is the last one: cutting the string to 255 bytes
    // at a char boundary would drop its U+FFFD; it must still be there.
    let mut bytes = vec![b'a'; 254];
    bytes.push(0xff);
    let (_, s) = parse_short_string(&short(&bytes)[..]).unwrap();
    assert!(s.as_str().len() <= 255);
    assert!(s.as_str().ends_with(FFFD), "{s}");
    // A multi-byte char straddling the cut is not split.
    let mut bytes = "é".repeat(126).into_bytes(); // 252 bytes
    bytes.extend_from_slice(b"\xffx");
    let (_, s) = parse_short_string(&short(&bytes)[..]).unwrap();
    assert_eq!(s.as_str(), format!("{}{FFFD}", "é".repeat(126)));
}

#[test]
fn a_field_table_with_a_non_utf8_key_parses() {
    let mut entries = short(b"\xc3\x28");
    entries.extend_from_slice(b"S");
    entries.extend_from_slice(&long(b"v1"));
    entries.extend_from_slice(&short(b"next"));
    entries.extend_from_slice(b"I");
    entries.extend_from_slice(&7i32.to_be_bytes());
    let input = long(&entries);
    let (rest, table) = parse_field_table(&input[..]).unwrap();
    assert_eq!(rest, EMPTY);
    let mut expected = FieldTable::default();
    expected.insert("\u{FFFD}(".into(), AMQPValue::LongString("v1".into()));
    expected.insert("next".into(), AMQPValue::LongInt(7));
    assert_eq!(table, expected);
}

#[test]
fn a_short_string_says_whether_its_bytes_were_replaced_and_a_real_u_fffd_is_not() {
    for (bytes, replaced) in [
        (&b"\xff\xfe-bad"[..], true),
        (b"\xc3\x28", true),
        (&short_of_255_invalid()[..], true),
        ("a \u{FFFD} sent as such".as_bytes(), false),
        (b"ok", false),
    ] {
        let (_, s) = parse_short_string(&short(bytes)[..]).unwrap();
        assert_eq!(s.replaced_invalid_utf8(), replaced, "{bytes:x?}");
    }
    assert!(!ShortString::from("\u{FFFD}").replaced_invalid_utf8());
}

fn short_of_255_invalid() -> Vec<u8> {
    vec![0xff; 255]
}

#[test]
fn the_replaced_mark_takes_no_part_in_comparing_hashing_or_serialising() {
    use std::hash::{BuildHasher, RandomState};
    let (_, lossy) = parse_short_string(&short(b"\xff")[..]).unwrap();
    let real = ShortString::from("\u{FFFD}");
    assert_eq!(lossy, real);
    assert_eq!(lossy.cmp(&real), std::cmp::Ordering::Equal);
    let hasher = RandomState::new();
    assert_eq!(hasher.hash_one(&lossy), hasher.hash_one(&real));
    assert_eq!(format!("{lossy:?}"), "ShortString(\"\u{FFFD}\")");
    assert_eq!(
        serde_json::to_string(&lossy).unwrap(),
        serde_json::to_string("\u{FFFD}").unwrap()
    );
    let back: ShortString = serde_json::from_str("\"x\"").unwrap();
    assert_eq!(back, ShortString::from("x"));
}

#[test]
fn a_table_key_says_whether_its_bytes_were_replaced() {
    let mut entries = short(b"\xc3\x28");
    entries.extend_from_slice(b"V");
    entries.extend_from_slice(&short("real \u{FFFD}".as_bytes()));
    entries.extend_from_slice(b"V");
    let (_, table) = parse_field_table(&long(&entries)[..]).unwrap();
    let marks: Vec<(&str, bool)> = table
        .inner()
        .keys()
        .map(|key| (key.as_str(), key.replaced_invalid_utf8()))
        .collect();
    assert_eq!(marks, [("real \u{FFFD}", false), ("\u{FFFD}(", true)]);
}

/// A header table `{"a": deep, "z": "after"}`, where `deep` is a chain of
/// `depth` levels; each level is `{"k": <next level>, "n": <its level>}` when
/// `table`, else `[<next level>, <its level>]`. Built from the inside out.
fn nested(depth: u32, table: bool) -> Vec<u8> {
    let mut inner: Vec<u8> = Vec::new();
    for level in (1..=depth).rev() {
        let mut content = Vec::new();
        if !inner.is_empty() {
            if table {
                content.extend_from_slice(&short(b"k"));
            }
            content.push(if table { b'F' } else { b'A' });
            content.extend_from_slice(&inner);
        }
        if table {
            content.extend_from_slice(&short(b"n"));
        }
        content.push(b'I');
        content.extend_from_slice(&(level as i32).to_be_bytes());
        inner = long(&content);
    }
    let mut top = short(b"a");
    top.push(if table { b'F' } else { b'A' });
    top.extend_from_slice(&inner);
    top.extend_from_slice(&short(b"z"));
    top.push(b'S');
    top.extend_from_slice(&long(b"after"));
    long(&top)
}

/// Walks the parsed chain (without recursion) and returns how many levels of
/// it were kept, checking each level's number and that the deepest one kept
/// is empty when the chain was cut.
fn kept_levels(parsed: &FieldTable, table: bool) -> u32 {
    assert_eq!(
        parsed.inner().get("z"),
        Some(&AMQPValue::LongString("after".into()))
    );
    let mut value = parsed.inner().get("a").unwrap();
    let mut level = 0;
    loop {
        let (next, number) = match value {
            AMQPValue::FieldTable(t) if table => {
                if t.inner().is_empty() {
                    return level;
                }
                (t.inner().get("k"), t.inner().get("n"))
            }
            AMQPValue::FieldArray(a) if !table => match a.as_slice() {
                [] => return level,
                [n] => (None, Some(n)),
                [next, n] => (Some(next), Some(n)),
                other => panic!("unexpected array {other:?}"),
            },
            other => panic!("unexpected value {other:?}"),
        };
        level += 1;
        assert_eq!(number, Some(&AMQPValue::LongInt(level as i32)));
        match next {
            Some(next) => value = next,
            None => return level,
        }
    }
}

fn parse_nested(depth: u32, table: bool) -> u32 {
    on_small_stack(move || {
        let input = nested(depth, table);
        let (rest, parsed) = parse_field_table(&input[..]).unwrap();
        assert_eq!(rest, EMPTY);
        kept_levels(&parsed, table)
    })
}

#[test]
fn deep_tables_are_cut_at_the_limit_and_the_rest_is_kept() {
    // The header table itself is level 1, so the chain keeps MAX - 1 levels.
    let kept = MAX_NESTING_DEPTH as u32 - 1;
    for depth in [3_000, 20_000] {
        assert_eq!(parse_nested(depth, true), kept, "depth {depth}");
        assert_eq!(parse_nested(depth, false), kept, "depth {depth}");
    }
    // Up to the limit nothing is lost.
    assert_eq!(parse_nested(kept, true), kept);
    assert_eq!(parse_nested(kept, false), kept);
    assert_eq!(parse_nested(5, true), 5);
}

#[test]
fn the_plain_3000_level_header_from_the_incident_parses() {
    // {"k": {"k": ... {} ...}}: 7 bytes a level, 21 KB, as in the incident;
    // followed by another property-like field that must be left in place.
    for depth in [3_000u32, 20_000] {
        on_small_stack(move || {
            let mut input = long(&[]);
            for _ in 1..depth {
                let mut level = short(b"k");
                level.push(b'F');
                level.extend_from_slice(&input);
                input = long(&level);
            }
            input.push(0x42);
            let (rest, table) = parse_field_table(&input[..]).unwrap();
            assert_eq!(rest, &[0x42][..]);
            // Levels 1 to MAX are kept; the one below is an empty table.
            let (mut t, mut kept) = (&table, 0);
            while let Some(AMQPValue::FieldTable(next)) = t.inner().get("k") {
                (t, kept) = (next, kept + 1);
            }
            assert_eq!(kept, MAX_NESTING_DEPTH);
            assert!(t.inner().is_empty());
        });
    }
}

#[test]
fn an_error_or_incomplete_input_leaves_the_depth_counter_at_zero() {
    on_small_stack(|| {
        let kept = MAX_NESTING_DEPTH as u32 - 1;
        let good = nested(kept, true);
        // A partial frame is still Incomplete (lapin waits for more bytes).
        let cut = &good[..good.len() / 2];
        assert!(matches!(
            parse_field_table(cut),
            Err(nom::Err::Incomplete(_))
        ));
        // A hard error 63 levels down: an unknown field type in the innermost
        // table (whose "n" entry comes first in the bytes).
        let mut bad = good.clone();
        let i = bad
            .windows(7)
            .position(|w| w == [1, b'n', b'I', 0, 0, 0, kept as u8]);
        bad[i.unwrap() + 2] = b'?';
        assert!(matches!(
            parse_field_table(&bad[..]),
            Err(nom::Err::Error(_))
        ));
        // Had a level been left counted, this would now be cut short.
        let (_, parsed) = parse_field_table(&good[..]).unwrap();
        assert_eq!(kept_levels(&parsed, true), kept);
    });
}

#[test]
fn a_normal_table_round_trips_unchanged() {
    // Shaped like RabbitMQ's x-death header, plus one of every type.
    let mut death = FieldTable::default();
    death.insert("count".into(), AMQPValue::LongLongInt(3));
    death.insert("reason".into(), AMQPValue::LongString("rejected".into()));
    death.insert("queue".into(), AMQPValue::LongString("lcm.requests".into()));
    death.insert("time".into(), AMQPValue::Timestamp(1_700_000_000));
    death.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongString("lcm.get".into())].into()),
    );
    let mut table = FieldTable::default();
    table.insert(
        "x-death".into(),
        AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
    );
    table.insert("bool".into(), AMQPValue::Boolean(true));
    table.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    table.insert("u8".into(), AMQPValue::ShortShortUInt(8));
    table.insert("i16".into(), AMQPValue::ShortInt(-16));
    table.insert("u16".into(), AMQPValue::ShortUInt(16));
    table.insert("i32".into(), AMQPValue::LongInt(-32));
    table.insert("u32".into(), AMQPValue::LongUInt(32));
    table.insert("f32".into(), AMQPValue::Float(1.5));
    table.insert("f64".into(), AMQPValue::Double(2.5));
    table.insert(
        "dec".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 1234,
        }),
    );
    table.insert(
        "bytes".into(),
        AMQPValue::ByteArray(vec![0, 0xff, 0xfe].into()),
    );
    table.insert(
        "not-utf8".into(),
        AMQPValue::LongString(b"\xff\xfe".to_vec().into()),
    );
    table.insert("void".into(), AMQPValue::Void);
    table.insert("é-ключ-鍵".into(), AMQPValue::LongString("ünïcødé".into()));

    // And a chain exactly as deep as the limit allows (header table = level 1).
    let mut deep = FieldTable::default();
    for _ in 1..MAX_NESTING_DEPTH - 1 {
        let mut t = FieldTable::default();
        t.insert("k".into(), AMQPValue::FieldTable(deep));
        deep = t;
    }
    table.insert("deep".into(), AMQPValue::FieldTable(deep));

    let mut buf = vec![0u8; 64 * 1024];
    let (_, len) = cf_gen(gen_field_table(&table), &mut buf[..]).unwrap();
    let buf = &buf[..len as usize];
    assert_eq!(parse_field_table(buf), Ok((EMPTY, table.clone())));
    // The same through parse_value, as a nested value.
    let mut value = vec![b'F'];
    value.extend_from_slice(buf);
    assert_eq!(
        parse_value(&value[..]),
        Ok((EMPTY, AMQPValue::FieldTable(table)))
    );
}
