use super::dump::quote_output;
use super::*;

#[test]
fn quote_output_matches_tahoe() {
    // Expected strings from allmydata.util.encodingutil.quote_output (Tahoe 1.20).
    assert_eq!(quote_output(b""), "''");
    assert_eq!(quote_output(b"hello"), "'hello'");
    assert_eq!(quote_output(b"it's"), "\"it's\"");
    assert_eq!(quote_output(b"a\nb"), "\"a\\x0ab\"");
    assert_eq!(
        quote_output(b"\xff\"$`\\\n"),
        "b\"\\xff\\\"\\$\\`\\\\\\x0a\""
    );
    assert_eq!(
        quote_output("\u{1F600}\u{FFFD}\u{0100}\u{7f}".as_bytes()),
        "\"\\U0001f600\\ufffd\u{0100}\\x7f\""
    );
    assert_eq!(quote_output("caf\u{e9}".as_bytes()), "'caf\u{e9}'");
}

#[test]
fn shown_prefix_hides_fields() {
    assert_eq!(shown_prefix("URI:FOO:secret"), "URI:FOO");
    assert_eq!(shown_prefix(""), "");
    assert_eq!(shown_prefix(&"é".repeat(100)).chars().count(), 40);
}

#[test]
fn every_prefix_parses_its_own_kind() {
    let ssk_body =
        "aeaqcaibaeaqcaibaeaqcaibae:aibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaiba";
    let chk_body = format!("{ssk_body}:1:1:0");
    for (prefix, _) in PREFIXES {
        let body = if prefix.contains("CHK") {
            chk_body.as_str()
        } else if prefix.contains("LIT") {
            "mfrgg"
        } else {
            ssk_body
        };
        let text = format!("{prefix}{body}");
        let cap = Cap::parse(&text).unwrap();
        assert_eq!(cap.to_string(), text);
    }
}
