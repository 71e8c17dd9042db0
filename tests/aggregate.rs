//! Aggregation: the KPL format byte for byte, planning against a naive model, boundaries,
//! and a model of the KCL's range filter.

use kinesis_batcher::Record;
use kinesis_batcher::aggregate::{Aggregate, Layout, deaggregate, encode, encoded_len};

#[test]
fn worked_example_of_the_format() {
    // kinesis-service.md §5: key "pk1", data "hi" in the KPL's own layout.
    let records = [Record::new(b"hi", b"pk1")];
    let mut aggregate = Aggregate {
        start: 0,
        end: 1,
        layout: Layout::OwnKeys,
        data_len: 0,
        size: 0,
        hash_key: 0,
    };
    aggregate.data_len = encoded_len(&records, &aggregate).unwrap();
    assert_eq!(aggregate.data_len, 33);
    let mut out = [0u8; 33];
    assert_eq!(encode(&records, &aggregate, &mut out), Ok(33));
    let expected_protobuf = [
        0x0A, 0x03, 0x70, 0x6B, 0x31, 0x1A, 0x06, 0x08, 0x00, 0x1A, 0x02, 0x68, 0x69,
    ];
    assert_eq!(out[..4], [0xF3, 0x89, 0x9A, 0xC2]);
    assert_eq!(out[4..17], expected_protobuf);
    let digest: Vec<u8> = (0..16)
        .map(|i| {
            u8::from_str_radix(&"e7799b81bbf6236671b426da556e52f8"[2 * i..2 * i + 2], 16).unwrap()
        })
        .collect();
    assert_eq!(out[17..], digest[..]);
    let back: Vec<_> = deaggregate(&out, b"a", None).unwrap().collect();
    assert_eq!(back.len(), 1);
    assert_eq!(
        (
            back[0].data,
            back[0].partition_key,
            back[0].explicit_hash_key
        ),
        (&b"hi"[..], &b"pk1"[..], None)
    );
}
