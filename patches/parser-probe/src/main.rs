//! `parser-probe KIND DEPTH STACK_KIB [drop|forget]`
//!
//! Builds a header table nested DEPTH levels deep (KIND `table`: every level is
//! `{"k": F{...}}`, 7 bytes per level; KIND `array`: `{"k": A[A[...]]}`, 5 bytes
//! per level), parses it with `parsing::parse_field_table` on a thread whose
//! stack is STACK_KIB KiB, then drops (or forgets) the result on that thread.
//! Exits 0 and prints `ok` if that fits; a stack overflow aborts the process
//! (SIGABRT), which is what the caller looks for.

use amq_protocol_types::parsing::parse_field_table;

fn nested(kind: &str, depth: usize) -> Vec<u8> {
    // Built from the inside out, without recursion.
    let mut inner: Vec<u8> = Vec::new(); // content of the innermost table/array
    for level in (1..depth).rev() {
        let mut v = Vec::new();
        match kind {
            "table" => {
                // entry "k" => F <len> <content>, inside a table
                v.extend_from_slice(&[1, b'k', b'F']);
            }
            "array" => {
                // element A <len> <content>, inside an array (level 1 is the table)
                if level == 1 {
                    v.extend_from_slice(&[1, b'k']);
                }
                v.push(b'A');
            }
            _ => panic!("kind is table or array"),
        }
        v.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        v.extend_from_slice(&inner);
        inner = v;
    }
    let mut out = (inner.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&inner);
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args[1].clone();
    let depth: usize = args[2].parse().unwrap();
    let stack_kib: usize = args[3].parse().unwrap();
    let drop_it = args.get(4).map(String::as_str) != Some("forget");
    let bytes = nested(&kind, depth);
    let len = bytes.len();
    let res = std::thread::Builder::new()
        .stack_size(stack_kib * 1024)
        .spawn(move || {
            let r = parse_field_table(&bytes[..]);
            let ok = matches!(&r, Ok((rest, _)) if rest.is_empty());
            if drop_it {
                drop(r)
            } else {
                std::mem::forget(r)
            }
            ok
        })
        .unwrap()
        .join()
        .unwrap();
    println!(
        "{} kind={kind} depth={depth} bytes={len} stack_kib={stack_kib}",
        if res { "ok" } else { "parse-failed" }
    );
}
