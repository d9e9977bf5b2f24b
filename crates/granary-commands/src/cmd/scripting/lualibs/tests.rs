//! Unit tests. Expected values and error texts are redis-server 7.0's for
//! the same Lua (EVAL, on a fresh Lua state, without Redis's "ERR " and
//! " script: ..." decorations). crates/granary-server/tests/lualibs.rs
//! runs these libraries against a live redis-server, with random values.

use super::{eval_for_test, fmt_g, strtod};

fn ok(code: &str) -> Vec<u8> {
    eval_for_test(code).unwrap_or_else(|e| panic!("{code}: {e}"))
}

fn err(code: &str) -> String {
    match eval_for_test(code) {
        Ok(v) => panic!(
            "{code}: expected an error, got {:?}",
            String::from_utf8_lossy(&v)
        ),
        Err(e) => e,
    }
}

#[test]
fn printf_g_formatting() {
    let cases: &[(f64, usize, &str)] = &[
        (0.0, 14, "0"),
        (-0.0, 14, "-0"),
        (1.0, 14, "1"),
        (0.1, 14, "0.1"),
        (1.0 / 3.0, 14, "0.33333333333333"),
        (1e14, 14, "1e+14"),
        (123456789012345.0, 14, "1.2345678901234e+14"),
        (99999999999999.0, 14, "99999999999999"),
        (1e-4, 14, "0.0001"),
        (1e-5, 14, "1e-05"),
        (1e300, 14, "1e+300"),
        (1.23456, 3, "1.23"),
        (2.5, 1, "2"),
        (f64::INFINITY, 14, "inf"),
        (f64::NEG_INFINITY, 14, "-inf"),
    ];
    for &(x, p, want) in cases {
        assert_eq!(fmt_g(x, p), want, "%.{p}g of {x}");
    }
}

#[test]
fn strtod_prefixes() {
    assert_eq!(strtod(b"12abc"), Some((12.0, 2)));
    assert_eq!(strtod(b"-1.5e3,"), Some((-1500.0, 6)));
    assert_eq!(strtod(b"1e"), Some((1.0, 1)));
    assert_eq!(strtod(b"1."), Some((1.0, 2)));
    assert_eq!(strtod(b".5"), Some((0.5, 2)));
    assert_eq!(strtod(b"0x1F"), Some((31.0, 4)));
    assert_eq!(strtod(b"0x"), Some((0.0, 1)));
    assert_eq!(strtod(b"-Infinity"), Some((f64::NEG_INFINITY, 9)));
    assert!(strtod(b"nan").is_some_and(|(v, n)| v.is_nan() && n == 3));
    assert_eq!(strtod(b"-"), None);
    assert_eq!(strtod(b"x"), None);
}

/// Deeply nested input recurses thousands of levels: it must not overflow
/// a small thread stack.
#[test]
fn deep_nesting_on_a_small_stack() {
    let run = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            (
                eval_for_test("return #cmsgpack.unpack(string.rep('\\145', 3999) .. '\\1')"),
                eval_for_test(
                    "cjson.decode_max_depth(5000) \
                     return #cjson.encode(cjson.decode(string.rep('[', 2000) .. string.rep(']', 2000)))",
                ),
            )
        })
        .expect("spawn");
    let (msgpack, json) = run.join().expect("no stack overflow");
    assert_eq!(msgpack, Ok(b"1".to_vec()));
    assert_eq!(
        json,
        Err("user_script:1: Cannot serialise, excessive nesting (1001)".into())
    );
}

#[test]
fn globals_are_registered() {
    assert_eq!(
        ok("return type(cjson)..type(cmsgpack)..type(bit)..type(struct)"),
        b"tabletabletabletable"
    );
}

#[test]
fn cjson_encode() {
    assert_eq!(ok("return cjson.encode({1,2,{a=1}})"), b"[1,2,{\"a\":1}]");
    assert_eq!(ok("return cjson.encode({})"), b"{}");
    assert_eq!(
        ok("return cjson.encode({a={}, b={{}}})"),
        b"{\"a\":{},\"b\":[{}]}"
    );
    assert_eq!(
        ok("return cjson.encode('a/b\"c\\\\d\\0\\1\\31\\127\\128\\255')"),
        b"\"a\\/b\\\"c\\\\d\\u0000\\u0001\\u001f\\u007f\x80\xff\""
    );
    assert_eq!(
        ok("return cjson.encode({[1]=1,[2]=2,[4]=4})"),
        b"[1,2,null,4]"
    );
    assert_eq!(
        err("return cjson.encode({[1]=1,[20]=2})"),
        "user_script:1: Cannot serialise table: excessively sparse array"
    );
    assert_eq!(ok("return cjson.encode({[0]=1})"), b"{\"0\":1}");
    assert_eq!(ok("return cjson.encode({[1.5]='x'})"), b"{\"1.5\":\"x\"}");
    assert_eq!(
        err("return cjson.encode({[true]=1})"),
        "user_script:1: Cannot serialise boolean: table key must be a number or string"
    );
    assert_eq!(
        err("return cjson.encode(function() end)"),
        "user_script:1: Cannot serialise function: type not supported"
    );
    assert_eq!(
        err("return cjson.encode(0/0)"),
        "user_script:1: Cannot serialise number: must not be NaN or Inf"
    );
    assert_eq!(ok("return cjson.encode(cjson.null)"), b"null");
    assert_eq!(ok("return cjson.encode({1, nil, 3})"), b"[1,null,3]");
    assert_eq!(ok("return cjson.encode(0.1)"), b"0.1");
    assert_eq!(ok("return cjson.encode(-0.0)"), b"-0");
    assert_eq!(ok("return cjson.encode(1e300)"), b"1e+300");
    assert_eq!(
        ok("return cjson.encode(123456789012345678)"),
        b"1.2345678901235e+17"
    );
    assert_eq!(ok("return cjson.encode(1/3)"), b"0.33333333333333");
    assert_eq!(ok("return cjson.encode(1e-5)"), b"1e-05");
    assert_eq!(ok("return cjson.encode(100000000000000)"), b"1e+14");
    assert_eq!(ok("return cjson.encode(1e15)"), b"1e+15");
    assert_eq!(
        err("return cjson.encode()"),
        "user_script:1: bad argument #1 to 'encode' (expected 1 argument)"
    );
    assert_eq!(
        err("local t = {} for i=1,1001 do t = {t} end return cjson.encode(t)"),
        "user_script:1: Cannot serialise, excessive nesting (1001)"
    );
    assert_eq!(
        err("local t = {} t[1] = t return cjson.encode(t)"),
        "user_script:1: Cannot serialise, excessive nesting (1001)"
    );
}

#[test]
fn cjson_decode() {
    assert_eq!(ok("return cjson.encode(cjson.decode('{\"a\":[1,2,{\"b\":null}],\"c\":\"\\\\u00e9\\\\ud83d\\\\ude00\"}'))"), b"{\"a\":[1,2,{\"b\":null}],\"c\":\"\xc3\xa9\xf0\x9f\x98\x80\"}");
    assert_eq!(
        ok("return cjson.decode('\"\\\\/\\\\b\\\\f\\\\n\\\\r\\\\t\\\\\"\\\\\\\\\"')"),
        b"/\x08\x0c\x0a\x0d\x09\"\\"
    );
    assert_eq!(
        err("return cjson.decode('{')"),
        "user_script:1: Expected object key string but found T_END at character 2"
    );
    assert_eq!(
        err("return cjson.decode('{\"a\":1,}')"),
        "user_script:1: Expected object key string but found T_OBJ_END at character 8"
    );
    assert_eq!(
        err("return cjson.decode('[1 2]')"),
        "user_script:1: Expected comma or array end but found T_NUMBER at character 4"
    );
    assert_eq!(
        err("return cjson.decode('')"),
        "user_script:1: Expected value but found T_END at character 1"
    );
    assert_eq!(
        err("return cjson.decode('nul')"),
        "user_script:1: Expected value but found invalid token at character 1"
    );
    assert_eq!(
        err("return cjson.decode('\"abc')"),
        "user_script:1: Expected value but found unexpected end of string at character 5"
    );
    assert_eq!(
        err("return cjson.decode('\"\\\\x\"')"),
        "user_script:1: Expected value but found invalid escape code at character 2"
    );
    assert_eq!(
        err("return cjson.decode('\"\\\\udc00\"')"),
        "user_script:1: Expected value but found invalid unicode escape code at character 2"
    );
    assert_eq!(
        err("return cjson.decode('[1] x')"),
        "user_script:1: Expected the end but found invalid token at character 5"
    );
    assert_eq!(ok("return tostring(cjson.decode('1e400'))"), b"inf");
    assert_eq!(ok("return tostring(cjson.decode('0x1F'))"), b"31");
    assert_eq!(
        ok("return tostring(cjson.decode('12345678901234567890'))"),
        b"1.2345678901235e+19"
    );
    assert_eq!(
        err("return cjson.decode('\\0[')"),
        "user_script:1: JSON parser does not support UTF-16 or UTF-32"
    );
    assert_eq!(
        ok("return tostring(cjson.decode('[1]\\0garbage')[1])"),
        b"1"
    );
    assert_eq!(
        ok("return tostring(cjson.decode('null') == cjson.null)"),
        b"true"
    );
    assert_eq!(
        err("return cjson.decode({})"),
        "user_script:1: bad argument #1 to 'decode' (string expected, got table)"
    );
    assert_eq!(
        err("local t = string.rep('[', 1001) return cjson.decode(t)"),
        "user_script:1: Found too many nested data structures (1001) at character 1001"
    );
}

#[test]
fn cjson_config() {
    assert_eq!(
        ok("return tostring(cjson.encode_keep_buffer(false))"),
        b"false"
    );
    assert_eq!(
        err("return cjson.encode_keep_buffer('maybe')"),
        "user_script:1: bad argument #1 to 'encode_keep_buffer' (invalid option 'maybe')"
    );
    assert_eq!(
        err("return cjson.encode_keep_buffer(1, 2)"),
        "user_script:1: bad argument #2 to 'encode_keep_buffer' (found too many arguments)"
    );
    assert_eq!(
        ok("cjson.encode_number_precision(3) return cjson.encode(3.14159)"),
        b"3.14"
    );
    assert_eq!(err("return cjson.encode_number_precision(15)"), "user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)");
    assert_eq!(
        err("cjson.encode_max_depth(2) return cjson.encode({{{1}}})"),
        "user_script:1: Cannot serialise, excessive nesting (3)"
    );
    assert_eq!(
        err("cjson.decode_max_depth(2) return cjson.decode('[[[1]]]')"),
        "user_script:1: Found too many nested data structures (3) at character 3"
    );
    assert_eq!(
        ok("cjson.encode_invalid_numbers(true) return cjson.encode({1/0, -1/0, 0/0})"),
        b"[inf,-inf,nan]"
    );
    assert_eq!(
        ok("cjson.encode_invalid_numbers('null') return cjson.encode({1/0, 0/0})"),
        b"[null,null]"
    );
    assert_eq!(
        err("cjson.decode_invalid_numbers(false) return cjson.decode('inf')"),
        "user_script:1: Expected value but found invalid token at character 1"
    );
    assert_eq!(
        ok("local a,b,c = cjson.encode_sparse_array(true, 3, 5) return tostring(a)..b..c"),
        b"true35"
    );
    assert_eq!(
        ok("cjson.encode_sparse_array(true) return cjson.encode({[1]=1,[20]=2})"),
        b"{\"1\":1,\"20\":2}"
    );
    assert_eq!(err("return cjson.encode_sparse_array(true, -1)"), "user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)");
    assert_eq!(ok("local j = cjson.new() j.encode_number_precision(2) return cjson.encode(1.2345)..j.encode(1.2345)"), b"1.23451.2");
    assert_eq!(
        ok("return cjson._NAME..cjson._VERSION..tostring(cjson.null)"),
        b"cjson2.1.0userdata: (nil)"
    );
}

#[test]
fn cmsgpack_pack() {
    assert_eq!(ok("return cmsgpack.pack({})"), b"\x90");
    assert_eq!(ok("return cmsgpack.pack({1,2,3})"), b"\x93\x01\x02\x03");
    assert_eq!(ok("return cmsgpack.pack({a=1})"), b"\x81\xa1a\x01");
    assert_eq!(
        ok("return cmsgpack.pack({[1]=1,[3]=3})"),
        b"\x82\x01\x01\x03\x03"
    );
    assert_eq!(
        ok("return cmsgpack.pack(1, 'a', true, false, nil, {})"),
        b"\x01\xa1a\xc3\xc2\xc0\x90"
    );
    assert_eq!(ok("return cmsgpack.pack(0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296)"), b"\x00\x7f\xcc\x80\xcc\xff\xcd\x01\x00\xcd\xff\xff\xce\x00\x01\x00\x00\xce\xff\xff\xff\xff\xcf\x00\x00\x00\x01\x00\x00\x00\x00");
    assert_eq!(ok("return cmsgpack.pack(-1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649)"), b"\xff\xe0\xd0\xdf\xd0\x80\xd1\xff\x7f\xd1\x80\x00\xd2\xff\xff\x7f\xff\xd2\x80\x00\x00\x00\xd3\xff\xff\xff\xff\x7f\xff\xff\xff");
    assert_eq!(ok("return cmsgpack.pack(2^63, -2^63, 1.5, 0.1, 1/0, 0/0, -0.0)"), b"\xca_\x00\x00\x00\xd3\x80\x00\x00\x00\x00\x00\x00\x00\xca?\xc0\x00\x00\xcb?\xb9\x99\x99\x99\x99\x99\x9a\xca\x7f\x80\x00\x00\xcb\xff\xf8\x00\x00\x00\x00\x00\x00\x00");
    assert_eq!(
        ok("return cmsgpack.pack(string.rep('x', 31), string.rep('y', 32))"),
        b"\xbfxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xd9 yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
    );
    assert_eq!(ok("return #cmsgpack.pack(string.rep('x', 255), string.rep('y', 256), string.rep('z', 65536))"), b"66057");
    assert_eq!(
        ok("return cmsgpack.pack(function() end, cjson.null)"),
        b"\xc0\xc0"
    );
    assert_eq!(
        ok("local t = {} for i=1,20 do t = {t} end return cmsgpack.pack(t)"),
        b"\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\xc0"
    );
    assert_eq!(
        ok("local t = {} for i=1,16 do t[i] = i end return cmsgpack.pack(t)"),
        b"\xdc\x00\x10\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
    );
    assert_eq!(
        err("return cmsgpack.pack()"),
        "user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)"
    );
}

#[test]
fn cmsgpack_unpack() {
    assert_eq!(
        ok("return table.concat({cmsgpack.unpack(cmsgpack.pack(1,2,3))}, ',')"),
        b"1,2,3"
    );
    assert_eq!(
        ok("return cjson.encode({cmsgpack.unpack(cmsgpack.pack({1,{a='b'},'x'}))})"),
        b"[[1,{\"a\":\"b\"},\"x\"]]"
    );
    assert_eq!(
        err("return cmsgpack.unpack('\\145')"),
        "user_script:1: Missing bytes in input."
    );
    assert_eq!(
        err("return cmsgpack.unpack('\\193')"),
        "user_script:1: Bad data format in input."
    );
    assert_eq!(
        err("return cmsgpack.unpack('\\129\\192\\1')"),
        "table index is nil"
    );
    assert_eq!(
        ok("return tostring(cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255'))"),
        b"-1"
    );
    assert_eq!(
        ok("return tostring(cmsgpack.unpack('\\211\\255\\255\\255\\255\\255\\255\\255\\254'))"),
        b"-2"
    );
    assert_eq!(
        ok("return tostring(cmsgpack.unpack('\\202\\63\\192\\0\\0'))"),
        b"1.5"
    );
    assert_eq!(
        err("return cmsgpack.unpack({})"),
        "user_script:1: bad argument #1 to 'unpack' (string expected, got table)"
    );
    assert_eq!(err("return select('#', cmsgpack.unpack(string.rep('\\1', 8000)))"), "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)");
    assert_eq!(
        err("return #cmsgpack.unpack(string.rep('\\145', 4000) .. '\\1')"),
        "user_script:1: stack overflow (in function mp_decode_to_lua_array)"
    );
    assert_eq!(
        ok("return table.concat({cmsgpack.unpack_one(cmsgpack.pack(1,2,3), 2)}, ',')"),
        b"-1,3"
    );
    assert_eq!(
        err("return cmsgpack.unpack_one(cmsgpack.pack(1,2,3), 4)"),
        "user_script:1: Start offset 4 greater than input length 3."
    );
    assert_eq!(
        err("return cmsgpack.unpack_one(cmsgpack.pack(1,2,3), -1)"),
        "user_script:1: Invalid request to unpack with offset of -1 and limit of 3."
    );
    assert_eq!(
        ok("return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 2, 1)}, ',')"),
        b"-1,2,3"
    );
    assert_eq!(
        err("return cmsgpack.unpack_limit(cmsgpack.pack(1,2,3))"),
        "user_script:1: bad argument #2 to 'unpack_limit' (number expected, got no value)"
    );
}

#[test]
fn bit_ops() {
    assert_eq!(ok("return tostring(bit.tobit(0xffffffff))"), b"-1");
    assert_eq!(ok("return tostring(bit.tobit(2^32 + 5))"), b"5");
    assert_eq!(
        ok("return tostring(bit.tobit(1.5))..tostring(bit.tobit(2.5))"),
        b"22"
    );
    assert_eq!(
        err("return bit.tobit('x')"),
        "user_script:1: bad argument #1 to 'tobit' (number expected, got string)"
    );
    assert_eq!(
        err("return bit.tobit()"),
        "user_script:1: bad argument #1 to 'tobit' (number expected, got no value)"
    );
    assert_eq!(ok("return tostring(bit.band(0xff, 0x0f, 0x3))"), b"3");
    assert_eq!(
        err("return bit.band(1, 'x', {})"),
        "user_script:1: bad argument #3 to 'band' (number expected, got table)"
    );
    assert_eq!(
        ok("return tostring(bit.lshift(1, 31))..','..tostring(bit.lshift(1, 33))"),
        b"-2147483648,2"
    );
    assert_eq!(
        ok("return tostring(bit.rshift(-1, 28))..','..tostring(bit.arshift(-256, 4))"),
        b"15,-16"
    );
    assert_eq!(
        ok("return tostring(bit.rol(0x12345678, 12))..','..tostring(bit.ror(0x12345678, 12))"),
        b"1164411171,1736516421"
    );
    assert_eq!(ok("return tostring(bit.bswap(0x12345678))"), b"2018915346");
    assert_eq!(
        ok("return bit.tohex(255)..bit.tohex(255, 2)..bit.tohex(255, -4)..bit.tohex(-1, 12)"),
        b"000000ffff00FFffffffff"
    );
    assert_eq!(
        err("return bit.tohex(1, nil)"),
        "user_script:1: bad argument #2 to 'tohex' (number expected, got nil)"
    );
    assert_eq!(
        err("local h = bit.tohex return h()"),
        "user_script:1: bad argument #1 to 'h' (number expected, got no value)"
    );
    assert_eq!(
        ok("local ok, e = pcall(bit.tohex) return tostring(ok)"),
        b"false"
    );
}

#[test]
fn struct_lib() {
    assert_eq!(ok("return struct.pack('>i', 1)"), b"\x00\x00\x00\x01");
    assert_eq!(ok("return struct.pack('bBhHlLT', -1, 255, -2, 65535, -3, 4, 5)"), b"\xff\xff\xfe\xff\xff\xff\xfd\xff\xff\xff\xff\xff\xff\xff\x04\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00");
    assert_eq!(
        ok("return struct.pack('<i16', -2)"),
        b"\xfe\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"
    );
    assert_eq!(
        ok("return struct.pack('>d<f', 1.5, 1.1)"),
        b"?\xf8\x00\x00\x00\x00\x00\x00\xcd\xcc\x8c?"
    );
    assert_eq!(
        ok("return struct.pack('c5', 'hello world')..struct.pack('s', 'hi')"),
        b"hellohi\x00"
    );
    assert_eq!(
        err("return struct.pack('c5', 'ab')"),
        "user_script:1: bad argument #3 to 'pack' (string too short)"
    );
    assert_eq!(
        ok("return struct.pack('!4bi', 1, 2)"),
        b"\x01\x00\x00\x00\x02\x00\x00\x00"
    );
    assert_eq!(
        err("return struct.pack('i')"),
        "user_script:1: bad argument #2 to 'pack' (number expected, got nil)"
    );
    assert_eq!(
        err("return struct.pack('q', 1)"),
        "user_script:1: bad argument #1 to 'pack' (invalid format option 'q')"
    );
    assert_eq!(
        err("return struct.pack('!3i', 1)"),
        "user_script:1: alignment 3 is not a power of 2"
    );
    assert_eq!(
        err("return struct.pack('i33', 1)"),
        "user_script:1: integral size 33 is larger than limit of 32"
    );
    assert_eq!(
        err("return struct.pack('i99999999999', 1)"),
        "user_script:1: integral size overflow"
    );
    assert_eq!(
        ok("return table.concat({struct.unpack('<I2b', '\\255\\255\\255')}, ',')"),
        b"65535,-1,4"
    );
    assert_eq!(
        ok("return table.concat({struct.unpack('bc0', '\\3abcd')}, ',')"),
        b"abc,5"
    );
    assert_eq!(
        err("return struct.unpack('c0', '3abc')"),
        "user_script:1: format 'c0' needs a previous size"
    );
    assert_eq!(
        err("return struct.unpack('s', 'abc')"),
        "user_script:1: unfinished string in data"
    );
    assert_eq!(
        err("return struct.unpack('b', 'ab', 0)"),
        "user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)"
    );
    assert_eq!(
        err("return struct.unpack('i', 'abc')"),
        "user_script:1: bad argument #2 to 'unpack' (data string too short)"
    );
    assert_eq!(ok("return tostring(struct.size('!bhilTfd'))"), b"40");
    assert_eq!(
        err("return struct.size('s')"),
        "user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)"
    );
}

/// A callback returns at most MAX_RESULTS values (Redis: 7999); past that
/// the error is Redis's, not mlua's.
#[test]
fn result_count_limit() {
    let unpack = |n: usize| {
        eval_for_test(&format!(
            "return select('#', cmsgpack.unpack(string.rep('\\1', {n})))"
        ))
    };
    assert_eq!(
        unpack(super::MAX_RESULTS),
        Ok(super::MAX_RESULTS.to_string().into_bytes())
    );
    assert_eq!(
        unpack(super::MAX_RESULTS + 1),
        Err(
            "user_script:1: stack overflow (too many return values at once; \
             use unpack_one or unpack_limit instead.)"
                .into()
        )
    );
    let fmt = "b".repeat(super::MAX_RESULTS);
    assert_eq!(
        eval_for_test(&format!(
            "return select('#', struct.unpack('{fmt}', string.rep('\\1', 9000)))"
        )),
        Err("user_script:1: stack overflow (too many results)".into())
    );
}
