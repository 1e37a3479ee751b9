use super::*;
use proptest::prelude::*;

/// Perfect-subtree hashes computed from leaves held in memory.
struct Mem(Vec<Hash>);

impl NodeSource for Mem {
    type Error = std::convert::Infallible;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let w = 1usize << level;
        let s = usize::try_from(index).unwrap() * w;
        Ok(root_from_leaves(&self.0[s..s + w]))
    }
}

fn h(s: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

// Test vectors published by the Certificate Transparency reference
// implementation, transparency-dev/merkle: `testonly/constants.go`
// (LeafInputs, RootHashes) and `proof/verify_test.go` (inclusionProofs,
// consistencyProofs; there leaf numbers are 1-based). The same values appear
// in google/certificate-transparency-go `merkletree/merkle_tree_test.go`.
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
/// (0-based leaf index, tree size, audit path).
const INCLUSION: [(u64, u64, &[&str]); 4] = [
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];
/// (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 4] = [
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn vector_leaves() -> Vec<Hash> {
    LEAVES
        .iter()
        .map(|l| leaf_hash(&hex::decode(l).unwrap()))
        .collect()
}

#[test]
fn roots_match_published_vectors() {
    let leaves = vector_leaves();
    let mem = Mem(leaves.clone());
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), h(ROOTS[0]));
    for n in 0..=8 {
        assert_eq!(
            root_from_leaves(&leaves[..n]),
            h(ROOTS[n]),
            "reference, size {n}"
        );
        assert_eq!(
            root(&mem, n as u64).unwrap(),
            h(ROOTS[n]),
            "stored nodes, size {n}"
        );
        if n > 0 {
            frontier.push(leaves[n - 1]);
            assert_eq!(frontier.root(), h(ROOTS[n]), "frontier, size {n}");
        }
    }
}

#[test]
fn proofs_match_published_vectors_and_verify() {
    let mem = Mem(vector_leaves());
    for (index, size, want) in INCLUSION {
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(
            inclusion_proof(&mem, index, size).unwrap(),
            want,
            "inclusion {index}/{size}"
        );
        let leaf = mem.0[usize::try_from(index).unwrap()];
        verify_inclusion(&leaf, index, size, &want, &h(ROOTS[size as usize])).unwrap();
    }
    for (old, new, want) in CONSISTENCY {
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(
            consistency_proof(&mem, old, new).unwrap(),
            want,
            "consistency {old}->{new}"
        );
        verify_consistency(
            old,
            new,
            &h(ROOTS[old as usize]),
            &h(ROOTS[new as usize]),
            &want,
        )
        .unwrap();
    }
}

#[test]
fn tampered_proofs_fail() {
    let mem = Mem(vector_leaves());
    let root8 = h(ROOTS[8]);
    for (index, size, path) in INCLUSION {
        let path: Vec<Hash> = path.iter().map(|s| h(s)).collect();
        let root = h(ROOTS[size as usize]);
        let leaf = mem.0[usize::try_from(index).unwrap()];
        for i in 0..path.len() {
            let mut p = path.clone();
            p[i][0] ^= 8;
            assert!(verify_inclusion(&leaf, index, size, &p, &root).is_err());
        }
        let mut longer = path.clone();
        longer.push(root);
        assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
        assert!(verify_inclusion(&leaf, index, size, &path[..path.len() - 1], &root).is_err());
        assert!(verify_inclusion(&leaf, index ^ 1, size, &path, &root).is_err());
        assert!(verify_inclusion(&leaf, index, size * 2, &path, &root).is_err());
        assert!(verify_inclusion(&leaf, index, size, &path, &root8).is_err() || size == 8);
        assert!(verify_inclusion(&[0u8; 31], index, size, &path, &root).is_err());
    }
    for (old, new, path) in CONSISTENCY {
        let path: Vec<Hash> = path.iter().map(|s| h(s)).collect();
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        for i in 0..path.len() {
            let mut p = path.clone();
            p[i][0] ^= 16;
            assert!(verify_consistency(old, new, &r1, &r2, &p).is_err());
        }
        assert!(verify_consistency(old, new, &r2, &r1, &path).is_err());
        assert!(verify_consistency(old + 1, new, &r1, &r2, &path).is_err());
        assert!(verify_consistency(old, new, &r1, &r2, &path[..path.len() - 1]).is_err());
        let empty: [Hash; 0] = [];
        assert!(verify_consistency(old, new, &r1, &r2, &empty).is_err());
    }
}

#[test]
fn hostile_inputs_never_panic() {
    let r = [0u8; 32];
    let huge: Vec<Vec<u8>> = vec![vec![0u8; 32]; 65];
    let empty: Vec<Vec<u8>> = Vec::new();
    let odd: Vec<Vec<u8>> = vec![vec![1u8; 7]];
    for (i, s) in [
        (0u64, 0u64),
        (u64::MAX, u64::MAX),
        (u64::MAX - 1, u64::MAX),
        (0, 1),
        (5, 3),
    ] {
        let _ = verify_inclusion(&r, i, s, &huge, &r);
        let _ = verify_inclusion(&r, i, s, &empty, &r);
        let _ = verify_inclusion(&r, i, s, &odd, &r);
        let _ = verify_inclusion(&r[..3], i, s, &empty, &r);
        let _ = verify_consistency(i, s, &r, &r, &huge);
        let _ = verify_consistency(i, s, &r, &r, &empty);
        let _ = verify_consistency(i, s, &r[..1], &r, &odd);
    }
    assert_eq!(verify_consistency(0, 0, &r, &r, &empty), Ok(()));
    assert!(verify_consistency(3, 3, &r, &[1u8; 32], &empty).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_proofs_verify_for_every_shape(n in 1u64..80, a in 0u64..80, b in 0u64..80) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mem = Mem(leaves.clone());
        let index = a % n;
        let root_n = root(&mem, n).unwrap();
        prop_assert_eq!(root_n, root_from_leaves(&leaves));
        let p = inclusion_proof(&mem, index, n).unwrap();
        prop_assert!(verify_inclusion(&leaves[index as usize], index, n, &p, &root_n).is_ok());
        let old = b % (n + 1);
        let root_old = root(&mem, old).unwrap();
        let c = consistency_proof(&mem, old, n).unwrap();
        prop_assert!(verify_consistency(old, n, &root_old, &root_n, &c).is_ok());
        if old > 0 && old < n {
            let mut bad = c.clone();
            bad[0][31] ^= 1;
            prop_assert!(verify_consistency(old, n, &root_old, &root_n, &bad).is_err());
        }
        let mut f = Frontier::new();
        for l in &leaves { f.push(*l); }
        prop_assert_eq!(f.root(), root_n);
        prop_assert_eq!(Frontier::load(&mem, n).unwrap(), f);
    }
}
