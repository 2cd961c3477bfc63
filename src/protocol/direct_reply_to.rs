//! Direct Reply-to addresses (docs/protocol.md section 4). Pure.
//!
//! A requester that consumes RabbitMQ's pseudo-queue `amq.rabbitmq.reply-to`
//! gets its requests' `reply_to` rewritten by the broker to an address of
//! its own, and a reply published to that address reaches it without a
//! queue. The broker decodes the address when the reply is published, and
//! some versions do so without guarding against garbage: RabbitMQ 3.10
//! crashes the publishing channel, and with it the worker's connection, on
//! `amq.rabbitmq.reply-to.x.y`. Any publisher can set such a `reply_to`, so
//! the worker publishes only to addresses of the exact form RabbitMQ
//! issues, and dead-letters the rest.
//!
//! The form every supported version issues (3.10's `rabbit_direct_reply_to`
//! v2, 4.0's, and 4.3's `rabbit_volatile_queue`): the prefix, a dot, the
//! standard base64 of an Erlang external-format pid whose node is
//! `reply@<decimal hash>` (`131, 88, 118, length:16, node, id:32,
//! serial:32, creation:32`), a dot, and the standard base64 of a 16-byte
//! key. The older v1 form put the real node name in the pid; 3.10 parses
//! such a node name as a hash and crashes, so it is refused too.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// RabbitMQ's Direct Reply-to pseudo-queue, and the prefix of the reply
/// addresses it hands out. A requester consumes it and names it in
/// `reply_to`; the broker routes the reply back on the channel.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Erlang's external term format: version, `NEW_PID_EXT`, `ATOM_UTF8_EXT`.
const PID_TERM_TAGS: [u8; 3] = [131, 88, 118];
/// The node name RabbitMQ puts in the pid of an address, before its hash.
const NODE_PREFIX: &str = "reply@";
/// Digits of `erlang:phash2/1`, which is below 2^27.
const MAX_HASH_DIGITS: usize = 9;
/// Bytes of the key after the pid (`rabbit_guid:gen()`).
const KEY_BYTES: usize = 16;
/// Room for any pid of the issued form (3 + 2 + 6 + 9 + 12 bytes) and
/// base64's estimate for it; a longer one is not of the form.
const MAX_PID_BYTES: usize = 48;

/// Whether `reply_to` names a Direct Reply-to address at all: the
/// pseudo-queue's name followed by anything (RabbitMQ routes every such
/// name to its Direct Reply-to code, not to a queue).
pub fn names_direct_reply_to(reply_to: &str) -> bool {
    reply_to.starts_with(DIRECT_REPLY_TO)
}

/// Whether `reply_to` is a Direct Reply-to address of the form RabbitMQ
/// issues, which every supported version decodes without harm. The bare
/// pseudo-queue name is not one: the broker rewrites it for requesters
/// that consume it, and refuses it from those that do not.
pub fn is_issued_address(reply_to: &str) -> bool {
    let Some(suffix) = reply_to
        .strip_prefix(DIRECT_REPLY_TO)
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return false;
    };
    let Some((pid, key)) = suffix.split_once('.') else {
        return false;
    };
    is_reply_pid(pid) && is_key(key)
}

// Decoded into the stack: every request with a Direct Reply-to address
// passes here.
fn is_reply_pid(encoded: &str) -> bool {
    let mut buffer = [0; MAX_PID_BYTES];
    let Ok(len) = STANDARD.decode_slice(encoded, &mut buffer) else {
        return false;
    };
    let term = &buffer[..len];
    let Some(rest) = term.strip_prefix(&PID_TERM_TAGS) else {
        return false;
    };
    let Some((length, rest)) = rest.split_first_chunk::<2>() else {
        return false;
    };
    let length = usize::from(u16::from_be_bytes(*length));
    // The node, then id, serial and creation, 32 bits each, and nothing more.
    if rest.len() != length + 12 {
        return false;
    }
    let node = &rest[..length];
    node.strip_prefix(NODE_PREFIX.as_bytes())
        .is_some_and(|hash| {
            (1..=MAX_HASH_DIGITS).contains(&hash.len()) && hash.iter().all(u8::is_ascii_digit)
        })
}

fn is_key(encoded: &str) -> bool {
    // base64's estimate for 16 bytes is 18.
    let mut buffer = [0; KEY_BYTES + 8];
    STANDARD
        .decode_slice(encoded, &mut buffer)
        .is_ok_and(|len| len == KEY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An address as RabbitMQ encodes one, for a node hash and a key.
    fn issued(node: &str, key: &[u8]) -> String {
        let mut pid = PID_TERM_TAGS.to_vec();
        pid.extend_from_slice(&(node.len() as u16).to_be_bytes());
        pid.extend_from_slice(node.as_bytes());
        pid.extend_from_slice(&[0, 0, 1, 219, 0, 0, 0, 0, 0x67, 0x3a, 0x1b, 0x02]);
        format!(
            "{DIRECT_REPLY_TO}.{}.{}",
            STANDARD.encode(pid),
            STANDARD.encode(key)
        )
    }

    #[test]
    fn an_address_a_rabbitmq_3_10_broker_issued_is_accepted() {
        // Read from a reply_to on this machine's RabbitMQ 3.10.8.
        let seen = "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAA4zgAAAABrEy6c.\
                    K8a9hEr7orhs5S0K1BgtOQ==";
        assert!(is_issued_address(seen));
        assert!(is_issued_address(&issued("reply@68781334", &[7; 16])));
    }

    #[test]
    fn the_reports_poison_and_its_relatives_are_refused() {
        let valid = issued("reply@68781334", &[7; 16]);
        let (pid, key) = valid[DIRECT_REPLY_TO.len() + 1..].split_once('.').unwrap();
        for reply_to in [
            "amq.rabbitmq.reply-to.x.y",
            "amq.rabbitmq.reply-to.bogus",
            "amq.rabbitmq.reply-toX",
            "amq.rabbitmq.reply-to",
            "amq.rabbitmq.reply-to.",
            "amq.rabbitmq.reply-to..",
            &format!("amq.rabbitmq.reply-to.{pid}"),
            &format!("amq.rabbitmq.reply-to.{pid}."),
            &format!("amq.rabbitmq.reply-to.{pid}.{key}.extra"),
            &format!("amq.rabbitmq.reply-to.{pid}.{key}="),
            &format!("amq.rabbitmq.reply-to.{}.{key}", &pid[..pid.len() - 4]),
            // The v1 form: a real node name, which 3.10 reads as a hash.
            &issued("rabbit@host", &[7; 16]),
            &issued("reply@", &[7; 16]),
            &issued("reply@1234567890", &[7; 16]),
            &issued("reply@12a", &[7; 16]),
            &issued("reply@68781334", &[7; 15]),
        ] {
            assert!(!is_issued_address(reply_to), "{reply_to}");
            assert!(names_direct_reply_to(reply_to), "{reply_to}");
        }
    }

    #[test]
    fn ordinary_queue_names_are_not_direct_reply_to() {
        for name in [
            "desk.replies",
            "amq.gen-JzTY20BRgKO-HjmUJj0wLg",
            "amq.rabbitmq",
        ] {
            assert!(!names_direct_reply_to(name), "{name}");
        }
    }

    proptest! {
        #[test]
        fn any_node_hash_and_key_of_the_issued_form_is_accepted(hash in 0u32..(1 << 27), key in any::<[u8; 16]>()) {
            let node = format!("reply@{hash}");
            prop_assert!(is_issued_address(&issued(&node, &key)));
        }

        #[test]
        fn arbitrary_suffixes_are_refused_unless_of_the_issued_form(suffix in "[A-Za-z0-9+/=.]{0,80}") {
            let reply_to = format!("{DIRECT_REPLY_TO}.{suffix}");
            if is_issued_address(&reply_to) {
                let (pid, key) = suffix.split_once('.').unwrap();
                prop_assert!(is_reply_pid(pid));
                prop_assert!(is_key(key));
            }
        }
    }
}
