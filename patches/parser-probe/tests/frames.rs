//! Whole frames, parsed by amq-protocol's `parse_frame` as lapin's io loop does.
//!
//! Run against the patched amq-protocol-types (they fail on the pristine one):
//!   cargo test --offline \
//!     --config 'patch.crates-io.amq-protocol-types.path="../amq-protocol-types"'

use amq_protocol::{
    frame::{AMQPFrame, parsing::parse_frame},
    protocol::{AMQPClass, basic::AMQPMethod},
    types::{AMQPValue, FieldTable},
};

const FFFD: char = char::REPLACEMENT_CHARACTER;
/// RabbitMQ's default frame_max, which lapin adopts by default (it asks for 0).
const FRAME_MAX: usize = 131_072;

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

fn raw_frame(frame_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![frame_type, 0, 1]; // channel 1
    f.extend_from_slice(&long(payload));
    f.push(0xCE);
    f
}

fn content_header(properties_flags: u16, properties: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 0]; // class basic, weight
    p.extend_from_slice(&5u64.to_be_bytes()); // body size
    p.extend_from_slice(&properties_flags.to_be_bytes());
    p.extend_from_slice(properties);
    raw_frame(2, &p)
}

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_content_header_with_non_utf8_properties_and_a_deep_header_parses() {
    on_small_stack(|| {
        // headers {c3 28: "v", "deep": 3,000 levels of {"k": ...}, "after": 1}
        let mut deep = long(&[]);
        for _ in 1..3_000 {
            let mut level = short(b"k");
            level.push(b'F');
            level.extend_from_slice(&deep);
            deep = long(&level);
        }
        let mut headers = short(b"\xc3\x28");
        headers.push(b'S');
        headers.extend_from_slice(&long(b"v"));
        headers.extend_from_slice(&short(b"deep"));
        headers.push(b'F');
        headers.extend_from_slice(&deep);
        headers.extend_from_slice(&short(b"after"));
        headers.extend_from_slice(&[b'I', 0, 0, 0, 1]);
        let mut props = long(&headers); // headers (bit 13)
        props.extend_from_slice(&short(b"\xff\xfe-bad")); // correlation_id (bit 10)
        props.extend_from_slice(&short(b"q\xff")); // reply_to (bit 9)
        props.extend_from_slice(&short(b"m-1")); // message_id (bit 7)
        props.extend_from_slice(&short(b"\xff")); // type (bit 5)
        props.extend_from_slice(&short(b"app")); // app_id (bit 3)
        let flags = 1 << 13 | 1 << 10 | 1 << 9 | 1 << 7 | 1 << 5 | 1 << 3;
        let bytes = content_header(flags, &props);
        assert!(bytes.len() < FRAME_MAX);

        let (rest, frame) = parse_frame(&bytes[..]).unwrap();
        assert!(rest.is_empty());
        let AMQPFrame::Header(1, header) = frame else {
            panic!("{frame:?}")
        };
        let p = &header.properties;
        let s = |v: &Option<amq_protocol::types::ShortString>| v.clone().unwrap().to_string();
        assert_eq!(s(p.correlation_id()), format!("{FFFD}{FFFD}-bad"));
        assert_eq!(s(p.reply_to()), format!("q{FFFD}"));
        assert_eq!(s(p.kind()), FFFD.to_string());
        assert_eq!(s(p.message_id()), "m-1");
        assert_eq!(s(p.app_id()), "app");
        let headers = p.headers().as_ref().unwrap().inner();
        assert_eq!(
            headers.get(format!("{FFFD}(").as_str()),
            Some(&AMQPValue::LongString("v".into()))
        );
        assert_eq!(headers.get("after"), Some(&AMQPValue::LongInt(1)));
        assert!(matches!(
            headers.get("deep"),
            Some(AMQPValue::FieldTable(_))
        ));
    });
}

#[test]
fn the_deepest_header_that_fits_in_one_frame_parses() {
    // Arrays nest in 5 bytes a level (tag + length): the deepest nesting a
    // 131,072-byte content-header frame can carry. headers {"": A[A[...]]}.
    on_small_stack(|| {
        let overhead = 8 + 14 + 4 + 6; // frame, header fields, table, entry
        let arrays = (FRAME_MAX - overhead) / 5 + 1; // the innermost is empty
        let mut deep = long(&[]);
        for _ in 1..arrays {
            let mut level = vec![b'A'];
            level.extend_from_slice(&deep);
            deep = long(&level);
        }
        let mut headers = short(b"");
        headers.push(b'A');
        headers.extend_from_slice(&deep);
        let bytes = content_header(1 << 13, &long(&headers));
        assert!(bytes.len() <= FRAME_MAX && bytes.len() > FRAME_MAX - 5);
        assert_eq!(arrays + 1, 26_210); // levels, counting the header table
        let (rest, frame) = parse_frame(&bytes[..]).unwrap();
        assert!(rest.is_empty());
        assert!(frame.is_header());
    });
}

#[test]
fn basic_deliver_and_return_with_non_utf8_names_parse() {
    // basic.deliver: consumer tag, delivery tag, redelivered, exchange, routing key
    let mut deliver = vec![0, 60, 0, 60];
    deliver.extend_from_slice(&short(b"ctag"));
    deliver.extend_from_slice(&7u64.to_be_bytes());
    deliver.push(1);
    deliver.extend_from_slice(&short(b"ex\xff"));
    deliver.extend_from_slice(&short(b"rk\xc3\x28"));
    let bytes = raw_frame(1, &deliver);
    let (_, frame) = parse_frame(&bytes[..]).unwrap();
    let AMQPFrame::Method(1, AMQPClass::Basic(AMQPMethod::Deliver(d))) = frame else {
        panic!("{frame:?}")
    };
    assert_eq!(d.exchange.as_str(), format!("ex{FFFD}"));
    assert_eq!(d.routing_key.as_str(), format!("rk{FFFD}("));
    assert_eq!((d.delivery_tag, d.redelivered), (7, true));

    // basic.return: reply code, reply text, exchange, routing key
    let mut ret = vec![0, 60, 0, 50, 1, 56]; // 312 NO_ROUTE
    ret.extend_from_slice(&short(b"NO_ROUTE"));
    ret.extend_from_slice(&short(b""));
    ret.extend_from_slice(&short(b"\xffkey"));
    let bytes = raw_frame(1, &ret);
    let (_, frame) = parse_frame(&bytes[..]).unwrap();
    let AMQPFrame::Method(1, AMQPClass::Basic(AMQPMethod::Return(r))) = frame else {
        panic!("{frame:?}")
    };
    assert_eq!(r.routing_key.as_str(), format!("{FFFD}key"));
}

#[test]
fn a_normal_content_header_is_unchanged() {
    let mut headers = FieldTable::default();
    headers.insert("x-a".into(), AMQPValue::LongString("b".into()));
    let mut table = short(b"x-a");
    table.push(b'S');
    table.extend_from_slice(&long(b"b"));
    let mut props = long(&table);
    props.extend_from_slice(&short(b"corr-1"));
    let bytes = content_header(1 << 13 | 1 << 10, &props);
    let (_, frame) = parse_frame(&bytes[..]).unwrap();
    let AMQPFrame::Header(_, header) = frame else {
        panic!()
    };
    assert_eq!(header.properties.headers(), &Some(headers));
    assert_eq!(
        header
            .properties
            .correlation_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "corr-1"
    );
}
