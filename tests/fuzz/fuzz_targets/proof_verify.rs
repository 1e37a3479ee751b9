//! RFC 9162 proof verification. From the input: a tree of up to 64 leaves,
//! two sizes and an index. Genuine inclusion and consistency proofs (made by
//! the prover over the same leaves) must verify; the same proofs with a
//! byte flipped, a hash dropped or added, or checked against the wrong
//! size or root must not; and verifying arbitrary proofs built from the raw
//! input must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use waymark_journal::merkle::{
    Hash, consistency_proof, inclusion_proof, leaf_hash, root_from_leaves, verify_consistency,
    verify_inclusion,
};

/// The leaves as a node source for the prover.
struct Leaves(Vec<Hash>);

impl waymark_journal::merkle::NodeSource for Leaves {
    type Error = std::convert::Infallible;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let w = 1usize << level;
        let s = usize::try_from(index).expect("small") * w;
        Ok(root_from_leaves(&self.0[s..s + w]))
    }
}

fn u(data: &[u8], i: usize) -> u64 {
    u64::from(data.get(i).copied().unwrap_or(0))
}

fuzz_target!(|data: &[u8]| {
    // Raw garbage proofs: must not panic whatever the sizes.
    let raw: Vec<[u8; 32]> = data
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32"))
        .collect();
    let big = |i: usize| {
        let mut b = [0u8; 8];
        for (k, x) in data.iter().skip(i).take(8).enumerate() {
            b[k] = *x;
        }
        u64::from_le_bytes(b)
    };
    let root = raw.first().copied().unwrap_or([0; 32]);
    let _ = verify_inclusion(&root, big(0), big(8), &raw, &root);
    let _ = verify_consistency(big(16), big(24), &root, &root, &raw);

    // A real tree.
    let n = (u(data, 0) % 64) + 1;
    let leaves: Vec<Hash> = (0..n)
        .map(|i| {
            leaf_hash(&[
                data.get(usize::try_from(i).expect("small") + 1)
                    .copied()
                    .unwrap_or(0),
                i as u8,
            ])
        })
        .collect();
    let m = (u(data, 1) % n) + 1;
    let index = u(data, 2) % m;
    let src = Leaves(leaves.clone());
    let root_n = root_from_leaves(&leaves);
    let root_m = root_from_leaves(&leaves[..usize::try_from(m).expect("small")]);

    let inc = inclusion_proof(&src, index, m).expect("infallible");
    let leaf = leaves[usize::try_from(index).expect("small")];
    assert!(verify_inclusion(&leaf, index, m, &inc, &root_m).is_ok());
    let con = consistency_proof(&src, m, n).expect("infallible");
    assert!(verify_consistency(m, n, &root_m, &root_n, &con).is_ok());

    // Tampering, driven by the input: every variant must fail.
    let flip = usize::try_from(u(data, 3)).expect("small");
    if !inc.is_empty() {
        let mut bad = inc.clone();
        let k = flip % bad.len();
        bad[k][flip % 32] ^= 1 << (u(data, 4) % 8);
        assert!(verify_inclusion(&leaf, index, m, &bad, &root_m).is_err());
        assert!(verify_inclusion(&leaf, index, m, &inc[..inc.len() - 1], &root_m).is_err());
    }
    let mut longer = inc.clone();
    longer.push([0; 32]);
    assert!(verify_inclusion(&leaf, index, m, &longer, &root_m).is_err());
    let mut other_leaf = leaf;
    other_leaf[0] ^= 1;
    assert!(verify_inclusion(&other_leaf, index, m, &inc, &root_m).is_err());
    if !con.is_empty() {
        let mut bad = con.clone();
        let k = flip % bad.len();
        bad[k][flip % 32] ^= 1 << (u(data, 4) % 8);
        assert!(verify_consistency(m, n, &root_m, &root_n, &bad).is_err());
    }
    if m < n {
        let mut other_root = root_n;
        other_root[flip % 32] ^= 1;
        assert!(verify_consistency(m, n, &root_m, &other_root, &con).is_err());
    }
});
