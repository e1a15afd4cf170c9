use std::time::Instant;
fn main() {
    for _ in 0..3 {
        let t0 = Instant::now();
        for _ in 0..20000 {
            kerasrs::engine::pool::join(|| {}, || {});
        }
        println!("empty join: {:?} per join", t0.elapsed() / 20000);
    }
}
