// The migrations are embedded by `sqlx::migrate!`, which cargo does not know to watch: a new
// migration file must rebuild the server.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
