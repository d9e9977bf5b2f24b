use granary_keyspace::alloc::{Counting, MiMalloc};

#[global_allocator]
static ALLOC: Counting<MiMalloc> = Counting(MiMalloc);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match granary_server::parse_args(&args) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(1);
        }
    };
    std::process::exit(granary_server::run(opts));
}
