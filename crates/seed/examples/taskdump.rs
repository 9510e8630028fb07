//! Prints the logical stack trace of the seed program: `cargo run --example taskdump`.

#[tokio::main]
async fn main() {
    match seed::trace_seed().await {
        Ok(trace) => print!("{trace}"),
        Err(e) => {
            eprintln!("taskdump: {e}");
            std::process::exit(1);
        }
    }
}
