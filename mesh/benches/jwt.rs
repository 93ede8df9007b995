//! JWT verification cost: a cached token, an uncached RS256 token, and bare
//! `jsonwebtoken::decode` of the same token for comparison. After the criterion groups,
//! a plain timing loop prints the ratios of the three.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BatchSize, Criterion};
use futures::executor::block_on;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mesh::authn::jwks::{JwkKeys, JwksCache, ISTIO_SAMPLE_JWKS};
use mesh::authn::jwt::{JwtVerifier, KeySource, Provider};

const DEMO_JWT: &str = include_str!("../data/istio-samples/demo.jwt");

fn provider() -> Provider {
    let keys = JwkKeys::parse(ISTIO_SAMPLE_JWKS).expect("sample JWKS parses");
    Provider {
        issuer: "testing@secure.istio.io".to_string(),
        audiences: Vec::new(),
        keys: KeySource::Inline(Ok(Arc::new(keys))),
        locations: Provider::default_locations(),
        forward: false,
        payload_header: None,
        claim_headers: Vec::new(),
        source: "bench".to_string(),
    }
}

fn sample_decoding_key() -> DecodingKey {
    let jwks: serde_json::Value = serde_json::from_str(ISTIO_SAMPLE_JWKS).unwrap();
    let key = &jwks["keys"][0];
    DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap())
        .unwrap()
}

fn bare_validation() -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}

fn bench_jwt(c: &mut Criterion) {
    let token = DEMO_JWT.trim();
    let jwks = JwksCache::new();
    let mut group = c.benchmark_group("jwt");

    let cached = JwtVerifier::new(vec![provider()], jwks.clone());
    block_on(cached.verify(token)).expect("demo.jwt verifies");
    group.bench_function("cached", |b| {
        b.iter(|| block_on(cached.verify(black_box(token))).unwrap())
    });

    group.bench_function("uncached_rs256", |b| {
        b.iter_batched(
            || JwtVerifier::new(vec![provider()], jwks.clone()),
            |verifier| {
                block_on(verifier.verify(black_box(token))).unwrap();
                verifier
            },
            BatchSize::SmallInput,
        )
    });

    let key = sample_decoding_key();
    let validation = bare_validation();
    group.bench_function("bare_decode_rs256", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(token), &key, &validation).unwrap()
        })
    });
    group.finish();
}

/// Mean time of `run` over `iterations`, after a warm-up of a tenth as many.
fn mean(iterations: u32, mut run: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 {
        run();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        run();
    }
    started.elapsed() / iterations
}

fn print_ratios() {
    let token = DEMO_JWT.trim();
    let jwks = JwksCache::new();
    let cached = JwtVerifier::new(vec![provider()], jwks.clone());
    block_on(cached.verify(token)).unwrap();
    let cached_time = mean(200_000, || {
        black_box(block_on(cached.verify(black_box(token))).unwrap());
    });

    let verifiers: Vec<JwtVerifier> = (0..2_200)
        .map(|_| JwtVerifier::new(vec![provider()], jwks.clone()))
        .collect();
    let mut next = verifiers.iter();
    let uncached_time = mean(2_000, || {
        let verifier = next.next().expect("one fresh verifier per iteration");
        black_box(block_on(verifier.verify(black_box(token))).unwrap());
    });

    let key = sample_decoding_key();
    let validation = bare_validation();
    let bare_time = mean(2_000, || {
        black_box(
            jsonwebtoken::decode::<serde_json::Value>(black_box(token), &key, &validation).unwrap(),
        );
    });

    println!("cached token:        {cached_time:?}");
    println!("uncached RS256:      {uncached_time:?}");
    println!("bare decode RS256:   {bare_time:?}");
    println!(
        "uncached / bare:     {:.2}",
        uncached_time.as_secs_f64() / bare_time.as_secs_f64()
    );
    println!(
        "bare / cached:       {:.1}",
        bare_time.as_secs_f64() / cached_time.as_secs_f64()
    );
}

criterion_group!(benches, bench_jwt);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
