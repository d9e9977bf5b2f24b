//! Pub/sub commands (Redis's pubsub.c): (P|S)SUBSCRIBE,
//! (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB introspection. Delivery
//! and the registry live in `crate::pubsub`.

use super::server::reply_help;
use crate::ctx::{CmdError, CmdResult, Ctx};
use crate::pubsub::{self, Kind};
use crate::table::{flag::*, Keys, Spec};
use crate::util::cstr;
use bytes::Bytes;

const G: &str = "pubsub";
const SUB: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;
const PUB: u32 = PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE;
const INTRO: u32 = PUBSUB | LOADING | STALE;

pub static COMMANDS: &[Spec] = &[
    Spec::new("subscribe", -2, SUB, Keys::None, subscribe)
        .group(G, "2.0.0")
        .doc("Listens for messages published to channels."),
    Spec::new("unsubscribe", -1, SUB, Keys::None, unsubscribe)
        .group(G, "2.0.0")
        .doc("Stops listening to messages posted to channels."),
    Spec::new("psubscribe", -2, SUB, Keys::None, psubscribe)
        .group(G, "2.0.0")
        .doc("Listens for messages published to channels that match one or more patterns."),
    Spec::new("punsubscribe", -1, SUB, Keys::None, punsubscribe)
        .group(G, "2.0.0")
        .doc("Stops listening to messages published to channels that match one or more patterns."),
    Spec::new("ssubscribe", -2, SUB, Keys::None, ssubscribe)
        .group(G, "7.0.0")
        .doc("Listens for messages published to shard channels."),
    Spec::new("sunsubscribe", -1, SUB, Keys::None, sunsubscribe)
        .group(G, "7.0.0")
        .doc("Stops listening to messages posted to shard channels."),
    Spec::new("publish", 3, PUB, Keys::None, publish)
        .group(G, "2.0.0")
        .doc("Posts a message to a channel."),
    Spec::new("spublish", 3, PUB, Keys::None, spublish)
        .group(G, "7.0.0")
        .doc("Post a message to a shard channel"),
    Spec::container("pubsub", SUBCOMMANDS)
        .group(G, "2.8.0")
        .doc("A container for Pub/Sub commands."),
];

static SUBCOMMANDS: &[Spec] = &[
    Spec::new("pubsub|channels", -2, INTRO, Keys::None, channels)
        .group(G, "2.8.0")
        .doc("Returns the active channels."),
    Spec::new("pubsub|numpat", 2, INTRO, Keys::None, numpat)
        .group(G, "2.8.0")
        .doc("Returns a count of unique pattern subscriptions."),
    Spec::new("pubsub|numsub", -2, INTRO, Keys::None, numsub)
        .group(G, "2.8.0")
        .doc("Returns a count of subscribers to channels."),
    Spec::new("pubsub|shardchannels", -2, INTRO, Keys::None, shardchannels)
        .group(G, "7.0.0")
        .doc("Returns the active shard channels."),
    Spec::new("pubsub|shardnumsub", -2, INTRO, Keys::None, shardnumsub)
        .group(G, "7.0.0")
        .doc("Returns the count of subscribers of shard channels."),
    Spec::new("pubsub|help", 2, LOADING | STALE, Keys::None, help)
        .group(G, "6.2.0")
        .doc("Returns helpful text about the different subcommands."),
];

/// Commands a RESP2 client may run while subscribed (Redis's processCommand).
pub fn allowed_when_subscribed(spec: &Spec) -> bool {
    matches!(
        spec.name,
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

/// The refusal of a command in subscribed mode; EXEC's is wrapped as
/// Redis's rejectCommand wraps every EXEC refusal.
pub fn subscribed_mode_error(spec: &Spec) -> String {
    let why = format!(
        "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
        spec.name
    );
    if spec.name == "exec" {
        format!("EXECABORT Transaction discarded because of: {why}")
    } else {
        format!("ERR {why}")
    }
}

/// The confirmation frame of one (un)subscription.
fn confirm(c: &mut Ctx, what: &[u8], name: Option<&[u8]>, kind: Kind) {
    c.out.push(3);
    c.out.bulk(what);
    match name {
        Some(n) => c.out.bulk(n),
        None => c.out.null(),
    }
    c.out.int(c.client.pubsub.count(kind) as i64);
}

fn subscribe_to(c: &mut Ctx, kind: Kind, what: &[u8]) -> CmdResult {
    for name in &c.args[1..] {
        pubsub::subscribe(c.server, c.client, kind, name);
        confirm(c, what, Some(name), kind);
    }
    Ok(())
}

/// Unsubscribes from the named ones, or from all; with nothing to drop,
/// one frame with a null name.
fn unsubscribe_from(c: &mut Ctx, kind: Kind, what: &[u8]) -> CmdResult {
    let names: Vec<Bytes> = if c.args.len() > 1 {
        c.args[1..].to_vec()
    } else {
        c.client.pubsub.names(kind)
    };
    if names.is_empty() {
        confirm(c, what, None, kind);
    }
    for name in &names {
        pubsub::unsubscribe(c.server, c.client, kind, name);
        confirm(c, what, Some(name), kind);
    }
    Ok(())
}

fn subscribe(c: &mut Ctx) -> CmdResult {
    subscribe_to(c, Kind::Channel, b"subscribe")
}

fn psubscribe(c: &mut Ctx) -> CmdResult {
    subscribe_to(c, Kind::Pattern, b"psubscribe")
}

fn ssubscribe(c: &mut Ctx) -> CmdResult {
    subscribe_to(c, Kind::Shard, b"ssubscribe")
}

fn unsubscribe(c: &mut Ctx) -> CmdResult {
    unsubscribe_from(c, Kind::Channel, b"unsubscribe")
}

fn punsubscribe(c: &mut Ctx) -> CmdResult {
    unsubscribe_from(c, Kind::Pattern, b"punsubscribe")
}

fn sunsubscribe(c: &mut Ctx) -> CmdResult {
    unsubscribe_from(c, Kind::Shard, b"sunsubscribe")
}

fn publish(c: &mut Ctx) -> CmdResult {
    // A subscriber's message to itself goes out after this reply, as
    // Redis 7.2+ orders it: the connection drains its queue next.
    let n = pubsub::publish(c.server, &c.args[1], &c.args[2]);
    c.out.int(n as i64);
    Ok(())
}

fn spublish(c: &mut Ctx) -> CmdResult {
    let n = pubsub::spublish(c.server, &c.args[1], &c.args[2]);
    c.out.int(n as i64);
    Ok(())
}

/// Redis's addReplySubcommandSyntaxError.
fn syntax_error(c: &Ctx) -> CmdError {
    CmdError::concat(&[
        b"ERR unknown subcommand or wrong number of arguments for '",
        cstr(&c.args[1], 128),
        b"'. Try PUBSUB HELP.",
    ])
}

fn list_active(c: &mut Ctx, kind: Kind) -> CmdResult {
    if c.args.len() > 3 {
        return Err(syntax_error(c));
    }
    let pattern = c.args.get(2).map(|p| &p[..]);
    let names = pubsub::active(c.server, kind, pattern);
    c.out.array(names.len());
    for n in &names {
        c.out.bulk(n);
    }
    Ok(())
}

fn count_each(c: &mut Ctx, kind: Kind) -> CmdResult {
    let names = &c.args[2..];
    // A flat array in RESP3 too, as Redis replies.
    c.out.array(2 * names.len());
    for n in names {
        c.out.bulk(n);
        c.out.int(pubsub::count_of(c.server, kind, n) as i64);
    }
    Ok(())
}

fn channels(c: &mut Ctx) -> CmdResult {
    list_active(c, Kind::Channel)
}

fn shardchannels(c: &mut Ctx) -> CmdResult {
    list_active(c, Kind::Shard)
}

fn numsub(c: &mut Ctx) -> CmdResult {
    count_each(c, Kind::Channel)
}

fn shardnumsub(c: &mut Ctx) -> CmdResult {
    count_each(c, Kind::Shard)
}

fn numpat(c: &mut Ctx) -> CmdResult {
    c.out.int(pubsub::total(c.server, Kind::Pattern) as i64);
    Ok(())
}

fn help(c: &mut Ctx) -> CmdResult {
    reply_help(
        c.out,
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    );
    Ok(())
}
