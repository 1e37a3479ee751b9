//! RFC 9162 §2.1 Merkle trees: hashing, proofs and their verification.
//!
//! Store-free: the auditor uses the verification functions on hostile input,
//! so they never panic, reject hashes that are not 32 bytes, sizes that do not
//! fit, and paths longer than a 64-level tree can have. Proof *generation*
//! reads perfect-subtree hashes through [`NodeSource`], so a store needs only
//! O(log n) node reads per subtree and never all leaves in memory.
//!
//! Levels: level 0 holds the leaf hashes; node `(level, index)` is the root of
//! the perfect subtree over leaves `index·2^level .. (index+1)·2^level`.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Longest proof any tree of at most 2^64 leaves can need.
const MAX_PROOF_LEN: usize = 64;

/// The empty tree's root: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// RFC 9162 leaf hash: `SHA-256(0x00 || data)`. For a journal entry this is
/// also its entry hash.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 9162 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The root over leaf hashes held in memory: the RFC's recursive definition,
/// used as the reference in tests and for small trees.
pub fn root_from_leaves(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = usize::try_from(split(n as u64)).unwrap_or(n / 2);
            node_hash(
                &root_from_leaves(&leaves[..k]),
                &root_from_leaves(&leaves[k..]),
            )
        }
    }
}

/// Gives the hashes of perfect subtrees of one tree.
pub trait NodeSource {
    /// Error reading a node.
    type Error;
    /// The hash of perfect subtree `(level, index)`; only asked for subtrees
    /// that lie wholly inside the tree the proof or root is computed for.
    ///
    /// # Errors
    /// Whatever the store reports, including a missing node.
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The hash of the subtree over leaves `[start, end)` as the RFC recursion
/// forms it (`start` aligned to the subtree's left-most split).
///
/// # Errors
/// A node read error.
pub fn range_root<S: NodeSource>(src: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return src.perfect(level, start >> level);
    }
    let k = split(n);
    // The left part is perfect, the right part recurses along the right edge.
    let left = range_root(src, start, start + k)?;
    let right = range_root(src, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree of `size` leaves.
///
/// # Errors
/// A node read error.
pub fn root<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_root(src, 0, size)
}

/// RFC 9162 §2.1.3.1 inclusion proof for leaf `index` in the tree of `size`
/// leaves (the caller checks `index < size`).
///
/// # Errors
/// A node read error.
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut path = Vec::new();
    let (mut start, mut end, mut m) = (0u64, size, index);
    let mut stack = Vec::new();
    while end - start > 1 {
        let k = split(end - start);
        if m < k {
            stack.push((start + k, end));
            end = start + k;
        } else {
            stack.push((start, start + k));
            start += k;
            m -= k;
        }
    }
    while let Some((s, e)) = stack.pop() {
        path.push(range_root(src, s, e)?);
    }
    Ok(path)
}

/// RFC 9162 §2.1.4.1 consistency proof from the tree of `old` leaves to the
/// tree of `new` leaves (empty when `old` is 0 or equals `new`; the caller
/// checks `old <= new`).
///
/// # Errors
/// A node read error.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, S::Error> {
    if old == 0 || old >= new {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end], b), unrolled: collect the siblings on the way
    // down, emit them bottom-up.
    let (mut start, mut end, mut m, mut whole) = (0u64, new, old, true);
    let mut stack = Vec::new();
    let mut path = Vec::new();
    loop {
        let n = end - start;
        if m == n {
            if !whole {
                path.push(range_root(src, start, end)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            stack.push((start + k, end));
            end = start + k;
        } else {
            stack.push((start, start + k));
            start += k;
            m -= k;
            whole = false;
        }
    }
    while let Some((s, e)) = stack.pop() {
        path.push(range_root(src, s, e)?);
    }
    Ok(path)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("old size {old} is larger than new size {new}")]
    SizesReversed {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// A hash (proof element or root) is not 32 bytes.
    #[error("{what} is {len} bytes, not 32")]
    BadHashLength {
        /// Which hash.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The proof has the wrong number of elements for the sizes.
    #[error("proof has the wrong number of elements ({len})")]
    WrongLength {
        /// Number of elements given.
        len: usize,
    },
    /// The proof leads to a different root.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

fn to_hash(what: &'static str, b: &[u8]) -> Result<Hash, ProofError> {
    b.try_into()
        .map_err(|_| ProofError::BadHashLength { what, len: b.len() })
}

fn to_hashes<T: AsRef<[u8]>>(proof: &[T]) -> Result<Vec<Hash>, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::WrongLength { len: proof.len() });
    }
    proof
        .iter()
        .map(|p| to_hash("proof element", p.as_ref()))
        .collect()
}

/// Verifies an RFC 9162 §2.1.3.2 inclusion proof of `leaf` (a leaf hash) at
/// `index` in the tree of `size` leaves with root `root`.
///
/// # Errors
/// [`ProofError`] saying what is wrong; never panics.
pub fn verify_inclusion<T: AsRef<[u8]>>(
    leaf: &[u8],
    index: u64,
    size: u64,
    proof: &[T],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let leaf = to_hash("leaf hash", leaf)?;
    let root = to_hash("root hash", root)?;
    let path = to_hashes(proof)?;
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf;
    for p in &path {
        if snode == 0 {
            return Err(ProofError::WrongLength { len: path.len() });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength { len: path.len() });
    }
    if r == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies an RFC 9162 §2.1.4.2 consistency proof that the tree of `old`
/// leaves with root `old_root` is a prefix of the tree of `new` leaves with
/// root `new_root`.
///
/// # Errors
/// [`ProofError`] saying what is wrong; never panics.
pub fn verify_consistency<T: AsRef<[u8]>>(
    old: u64,
    new: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[T],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::SizesReversed { old, new });
    }
    let old_root = to_hash("old root hash", old_root)?;
    let new_root = to_hash("new root hash", new_root)?;
    let path = to_hashes(proof)?;
    if old == new {
        if !path.is_empty() {
            return Err(ProofError::WrongLength { len: path.len() });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old == 0 {
        // Every tree extends the empty tree; the proof must be empty.
        return if path.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength { len: path.len() })
        };
    }
    if path.is_empty() {
        return Err(ProofError::WrongLength { len: 0 });
    }
    let mut nodes = Vec::with_capacity(path.len() + 1);
    if old.is_power_of_two() {
        nodes.push(old_root);
    }
    nodes.extend_from_slice(&path);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (nodes[0], nodes[0]);
    for c in &nodes[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength { len: path.len() });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength { len: path.len() });
    }
    if fr == old_root && sr == new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The right edge of a growing tree: the roots of its perfect subtrees, one
/// per set bit of the size, largest first. At most 64 hashes, whatever the
/// tree size; appending and the current root need nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of a tree of `size` leaves from its nodes.
    ///
    /// # Errors
    /// A node read error.
    pub fn load<S: NodeSource>(src: &S, size: u64) -> Result<Self, S::Error> {
        let mut nodes = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                nodes.push(src.perfect(level, start >> level)?);
                start += 1u64 << level;
            }
        }
        Ok(Self { size, nodes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash. Returns the interior nodes this completed, from
    /// level 1 upwards (node `(l, (size >> l) - 1)` for the new size).
    pub fn push(&mut self, leaf: Hash) -> Vec<Hash> {
        let mut completed = Vec::new();
        let mut h = leaf;
        let mut idx = self.size;
        while idx & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            h = node_hash(&left, &h);
            completed.push(h);
            idx >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
        completed
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, n| node_hash(n, &acc))
    }
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;
