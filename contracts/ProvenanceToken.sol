// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {ERC721Utils} from "@openzeppelin/contracts/token/ERC721/utils/ERC721Utils.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {Inference, ModelRegistry} from "./ModelRegistry.sol";

/// @notice ERC-7007 (Final): verifiable AI-generated content token.
interface IERC7007 is IERC165, IERC721 {
    event AigcData(uint256 indexed tokenId, bytes indexed prompt, bytes indexed aigcData, bytes proof);

    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external;

    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
        view
        returns (bool success);
}

/// @title ProvenanceToken
/// @notice One token per proven inference. A token exists only if its proof verified on-chain
/// for a registered model; it records which model produced which outputs from which
/// (committed) input, and pays royalties to the model's split (and, for a derivative, to the
/// parent token's creator too, where the child's model agreed to it). A batch proof (a circuit
/// proving `batchSize` inferences at once) mints one token per real inference in one
/// transaction; trailing padding items of a partial batch are not minted.
///
/// Storage is split so a batch pays once for what its tokens share: one `Proven` entry per
/// mint (circuit, proof, creator, ...) and three words per token (input commitment, outputs
/// hash, metadata digest).
///
/// Metadata: the chain keeps hashes, the content lives off-chain. `tokenURI` is
/// `ipfs://<CID>` of the token's ERC-7007 metadata JSON, a single raw IPFS block whose sha256
/// the mint recorded; the JSON points at the rendered output, the proof bundle and the model
/// by CID. `proofmint verify-asset` checks each against the chain's record.
///
/// ERC-7007 encodings: prompt = abi.encode(modelId, inputCommitment);
/// aigcData = abi.encodePacked(the item's output instances);
/// proof = abi.encode(zkProof, instances, vka, index) (vka empty unless the model uses a
/// reusable verifier; index = the item's position in the batch, 0 for a single proof).
/// A mint publishes the proof once, in ProofPublished; each token's AigcData event carries
/// abi.encode(proofHash, index) as its proof, pointing at that event.
///
/// A model registered as linked segments (see ModelRegistry) mints like any other, one token
/// per inference: zkProof = abi.encode(bytes[] its segments' proofs), instances = theirs back
/// to back, vka = their VKAs back to back. The registry's verifyInference checks every segment
/// on its verifier and every link in the same transaction; the input commitment comes from the
/// first segment's instances, the outputs from the last's, and the replay key covers them all.
///
/// Input commitments: public input = keccak256 of the item's input instances; hashed input =
/// the proof's Poseidon hash (batch size 1) or keccak256(abi.encode(hash, index)) (a batch
/// shares one hash); private input = keccak256("").
///
/// Replay: an inference is keyed by what verified it (the registry's verifierKey: the
/// verifier's code, and a reusable verifier's verifying-key digest) and its instances, and by
/// nothing a registration chooses (not the id, not the layout), so registrations that alias
/// one verifier can't mint one statement twice. With a private input the statement is the
/// outputs alone: one token per distinct output, whichever input gave it. A different
/// verifier contract is a different key: see ModelRegistry's notes and SECURITY.md.
///
/// Prover's share: `mintWithProver` names who proved and carries their signature (EIP-191)
/// over `proverStatement(keccak256(zkProof), keccak256(abi.encodePacked(instances)))`, so the
/// prover can't be swapped; where the model's license reserves `proverShareBps`, the tokens'
/// royalty is split between the model's (or a derivative's) receiver and the prover.
///
/// Front-running: mint is the reveal of a commit of keccak256(abi.encode(minter, inferenceId,
/// salt)) made at least `minCommitAge` blocks earlier. A proof copied from a pending reveal
/// is useless to an account without such a commitment; making one and letting it age means
/// keeping the pending reveal out of `minCommitAge` consecutive blocks (block stuffing:
/// SECURITY.md measures its cost).
contract ProvenanceToken is ERC721, ERC2981, IERC7007 {
    bytes private constant BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
    /// Tags a prover's statement (see proverStatement).
    bytes32 public constant PROVER_TAG = keccak256("proofmint.prover");

    /// What a token's view returns: its proof's shared fields and its own.
    struct Record {
        bytes32 modelId;
        bytes32 inferenceId;
        bytes32 inputCommitment;
        bytes32 outputsHash;
        bytes32 proofHash;
        address creator;
        uint64 mintedAt;
        uint256 parent;
        string proofURI;
        uint32 batchIndex;
        uint32 batchCount;
        bytes32 metadataDigest; // sha256 of the metadata JSON: tokenURI's CID
        uint32 errorPpm; // the minter's statement of its proof's error (see MintRequest)
        address royaltyReceiver;
        address prover; // who proved it (a prover-signed mint); zero when unnamed
        bool lineageProven; // its parent is a token of the model its model's input is from (see mint)
    }

    struct Proven {
        bytes32 modelId;
        bytes32 inferenceId;
        bytes32 proofHash;
        address creator;
        uint64 mintedAt;
        uint32 count;
        uint256 firstToken;
        uint256 parent;
        string proofURI;
        address royaltyReceiver; // a derivative's or prover's split; zero: the model's
        address prover;
    }

    struct Item {
        bytes32 inputCommitment;
        bytes32 outputsHash;
        bytes32 metadataDigest;
        uint32 errorPpm;
    }

    struct MintRequest {
        bytes32 modelId; // the registry's id: keccak256(abi.encode(registrant, circuitHash))
        address to;
        uint256 parent;
        bytes32 inputCommitment; // the item's commitment; for a batch, keccak256 of the items' ones
        bytes32 salt;
        string proofURI; // characters a URI needs (ipfs://CID of the proof bundle)
        uint32 count; // real inferences in the proof: 1 .. batchSize, padding after them
        bytes32[] metadata; // per token: sha256 of its metadata JSON (its raw-block CID's digest)
        // per token: its proof's max |decoded output - the float model's| in millionths of the
        // scale compile judged the circuit on, rounded up; the minter's statement, as the
        // metadata's attributes are (a float model can't run here): verify-asset re-measures it
        uint32[] errorPpm;
        // a lineage child whose input is a slice of its parent's outputs: the parent token's
        // output instances, all of them (they must hash to its outputs hash); empty otherwise
        uint256[] parentOutputs;
    }

    ModelRegistry public immutable registry;
    uint256 public totalMinted;
    Proven[] private _proofs; // ascending firstToken: a token's proof is found by binary search
    mapping(uint256 tokenId => Item) private _items;
    mapping(bytes32 inferenceId => uint256 tokenId) public tokenOfInference;
    mapping(bytes32 commitment => uint256 blockNumber) public commitments;

    /// @notice A minter committed to (minter, inference, salt) ahead of its reveal.
    event Committed(bytes32 indexed commitment, address indexed committer);
    /// @notice A token was minted for a verified inference.
    event Minted(uint256 indexed tokenId, bytes32 indexed modelId, bytes32 indexed inferenceId, address creator, uint256 parent);
    /// @notice A mint's proof and instances, published once for all its tokens.
    event ProofPublished(uint256 indexed firstToken, bytes32 indexed proofHash, bytes zkProof, uint256[] instances, bytes32[] vka);

    /// @notice This inference is token `tokenId` already.
    error ProvenanceTokenAlreadyMinted(bytes32 inferenceId, uint256 tokenId);
    /// @notice The proof URI holds a character outside the URI-safe set (at `position`).
    error ProvenanceTokenUnsafeURI(uint256 position);
    /// @notice The minter may not name this token as parent (it neither owns nor is approved for it).
    error ProvenanceTokenParentNotAuthorized(uint256 parent, address caller);
    /// @notice The caller never committed to this (caller, inference, salt).
    error ProvenanceTokenNoCommitment(bytes32 commitment);
    /// @notice The commitment is younger than `minCommitAge` blocks: reveal from `revealableAt` on.
    error ProvenanceTokenCommitTooRecent(bytes32 commitment, uint256 committedAt, uint256 revealableAt);
    /// @notice The request's input commitment is not the one the proven instances give.
    error ProvenanceTokenInputMismatch(bytes32 expected, bytes32 proven);
    /// @notice The named parent token does not exist.
    error ProvenanceTokenUnknownParent(uint256 parent);
    /// @notice Only the token's owner may do this.
    error ProvenanceTokenNotTokenOwner(uint256 tokenId, address caller);
    /// @notice The AIGC data does not match the token's recorded inference, or does not verify.
    error ProvenanceTokenDataMismatch(uint256 tokenId);
    /// @notice A mint must make between 1 and the model's batch size tokens.
    error ProvenanceTokenBadCount(uint32 count, uint32 batchSize);
    /// @notice A mint needs one non-zero metadata digest and one error statement per token.
    error ProvenanceTokenBadMetadata(uint256 given, uint32 count);
    /// @notice The parent token's model license does not allow derivatives.
    error ProvenanceTokenDerivativesNotAllowed(uint256 parent, bytes32 parentModel);
    /// @notice The parent's license asks a share of the royalty, and the child's model never
    /// agreed to pay its parent model (it is neither that model nor registered as its child).
    error ProvenanceTokenParentShareNotAgreed(uint256 parent, bytes32 parentModel, bytes32 model);
    /// @notice The child's proven input is not the parent token's proven output, though its
    /// model's input is from the parent's model (a forged lineage).
    error ProvenanceTokenLineageMismatch(uint256 parent, bytes32 parentOutputs, bytes32 childInputs);
    /// @notice The parent outputs given for a sliced lineage are not the parent token's proven
    /// outputs (they don't hash to its outputs hash).
    error ProvenanceTokenParentOutputsMismatch(uint256 parent, bytes32 outputsHash, bytes32 given);
    /// @notice The prover signature over the proof's statement is not `prover`'s (it is `signer`'s).
    error ProvenanceTokenBadProverSignature(address prover, address signer);
    /// @notice A commitment must age at least one block.
    error ProvenanceTokenBadCommitAge(uint256 minCommitAge);

    /// Blocks a commitment must age before its reveal (see the notes on front-running).
    uint256 public immutable minCommitAge;

    constructor(ModelRegistry registry_, uint256 minCommitAge_) ERC721("proofmint provenance", "PMINT") {
        if (minCommitAge_ == 0) revert ProvenanceTokenBadCommitAge(minCommitAge_);
        registry = registry_;
        minCommitAge = minCommitAge_;
    }

    // ---- commit / reveal mint ----

    /// @notice The commitment a minter publishes before revealing: binds minter, inference and salt.
    function commitmentFor(address minter, bytes32 inferenceId, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encode(minter, inferenceId, salt));
    }

    /// @notice The replay key of a proven statement (see the contract's notes on replay).
    function inferenceIdOf(bytes32 modelId, uint256[] calldata instances) public view returns (bytes32) {
        return _inferenceId(modelId, instances);
    }

    function _inferenceId(bytes32 modelId, uint256[] memory instances) private view returns (bytes32) {
        return keccak256(abi.encode(registry.verifierKey(modelId), keccak256(abi.encodePacked(instances))));
    }

    /// @notice Publish a commitment (from `commitmentFor`) before revealing with `mint`.
    function commit(bytes32 commitment) external {
        if (commitments[commitment] == 0) commitments[commitment] = block.number;
        emit Committed(commitment, msg.sender);
    }

    /// @notice Mint the tokens of a proof: one per real inference (`r.count`), consecutive ids.
    /// Requirements:
    /// - the caller committed to (caller, inferenceId, salt) at least `minCommitAge` blocks ago;
    /// - the statement (verifier key + instances) was never minted, through any registration;
    /// - the proof verifies on-chain for the registered model;
    /// - 1 <= `r.count` <= the model's batch size;
    /// - `r.inputCommitment` equals the commitment of the proven input instances;
    /// - `parent` is 0 or an existing token the caller owns or is approved for, whose model's
    ///   license allows derivatives; if that license gives the parent's creator a share of the
    ///   royalty, the parent's model is this model, the one this model registered as its parent,
    ///   or the one its input is from (`inputFrom`);
    /// - lineage: where the parent is a token of the model this model's input is from, the
    ///   proven input instances (one inference) are exactly the parent token's proven output
    ///   instances (keccak256 of them packed equals its outputs hash), or for a model that takes
    ///   a slice of them (`inputFromStart`), that slice of `r.parentOutputs`, which must hash to
    ///   the parent's outputs hash;
    /// - one non-zero metadata digest and one error statement (`errorPpm`) per token;
    /// - `proofURI` holds only URI-safe characters.
    function mint(MintRequest calldata r, bytes calldata zkProof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (uint256)
    {
        return _mint(r, zkProof, instances, vka, address(0));
    }

    /// @notice The statement a prover signs (EIP-191) to be named, and paid, as a proof's prover.
    function proverStatement(bytes32 proofHash, bytes32 instancesHash) public pure returns (bytes32) {
        return keccak256(abi.encode(PROVER_TAG, proofHash, instancesHash));
    }

    /// @notice `mint`, naming `prover` as whoever proved: `signature` must be theirs over the
    /// proof's statement (see the contract's notes); the license's prover share is theirs.
    function mintWithProver(
        MintRequest calldata r,
        bytes calldata zkProof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        address prover,
        bytes calldata signature
    ) external returns (uint256) {
        bytes32 statement = proverStatement(keccak256(zkProof), keccak256(abi.encodePacked(instances)));
        (address signer,,) = ECDSA.tryRecover(MessageHashUtils.toEthSignedMessageHash(statement), signature);
        if (prover == address(0) || signer != prover) revert ProvenanceTokenBadProverSignature(prover, signer);
        return _mint(r, zkProof, instances, vka, prover);
    }

    function _mint(
        MintRequest calldata r,
        bytes calldata zkProof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        address prover
    ) private returns (uint256 firstToken) {
        bytes32 inferenceId = inferenceIdOf(r.modelId, instances);
        if (tokenOfInference[inferenceId] != 0) {
            revert ProvenanceTokenAlreadyMinted(inferenceId, tokenOfInference[inferenceId]);
        }
        bytes32 c = commitmentFor(msg.sender, inferenceId, r.salt);
        uint256 committedAt = commitments[c];
        if (committedAt == 0) revert ProvenanceTokenNoCommitment(c);
        if (block.number < committedAt + minCommitAge) {
            revert ProvenanceTokenCommitTooRecent(c, committedAt, committedAt + minCommitAge);
        }
        if (r.metadata.length != r.count || r.errorPpm.length != r.count) {
            revert ProvenanceTokenBadMetadata(r.metadata.length, r.count);
        }
        _checkURI(r.proofURI);

        registry.verifyInference(r.modelId, zkProof, instances, vka);
        ModelRegistry.Registration memory m = registry.registration(r.modelId);
        if (r.count == 0 || r.count > m.batchSize) revert ProvenanceTokenBadCount(r.count, m.batchSize);
        address receiver = r.parent == 0 ? address(0) : _derivativeSplit(r, m, instances);
        if (prover != address(0) && m.license.proverShareBps != 0) receiver = _proverSplit(receiver, r.modelId, m, prover);
        delete commitments[c];

        firstToken = totalMinted + 1;
        totalMinted += r.count;
        tokenOfInference[inferenceId] = firstToken;
        bytes32 proofHash = keccak256(zkProof);
        _proofs.push(Proven({
            modelId: r.modelId,
            inferenceId: inferenceId,
            proofHash: proofHash,
            creator: msg.sender,
            mintedAt: uint64(block.timestamp),
            count: r.count,
            firstToken: firstToken,
            parent: r.parent,
            proofURI: r.proofURI,
            royaltyReceiver: receiver,
            prover: prover
        }));
        emit ProofPublished(firstToken, proofHash, zkProof, instances, vka);
        bytes32 claimed = _mintItems(r, m, instances, inferenceId, firstToken, proofHash);
        if (claimed != r.inputCommitment) revert ProvenanceTokenInputMismatch(r.inputCommitment, claimed);
        // ERC-721's receiver check, once per mint: `_safeMint` per token would ask a contract
        // recipient `count` times for one decision.
        ERC721Utils.checkOnERC721Received(msg.sender, address(0), r.to, firstToken, "");
    }

    /// Mints the proof's real items; returns the proof's input commitment (see MintRequest).
    function _mintItems(
        MintRequest calldata r,
        ModelRegistry.Registration memory m,
        uint256[] memory instances,
        bytes32 inferenceId,
        uint256 firstToken,
        bytes32 proofHash
    ) private returns (bytes32) {
        bytes memory commitmentsPacked;
        for (uint256 i = 0; i < r.count; ++i) {
            bytes32 input = Inference.inputCommitment(m, instances, i);
            commitmentsPacked = abi.encodePacked(commitmentsPacked, input);
            bytes memory outputs = Inference.outputs(m, instances, i);
            uint256 tokenId = firstToken + i;
            if (r.metadata[i] == bytes32(0)) revert ProvenanceTokenBadMetadata(i, r.count);
            _items[tokenId] = Item(input, keccak256(outputs), r.metadata[i], r.errorPpm[i]);
            _mint(r.to, tokenId);
            emit Minted(tokenId, r.modelId, inferenceId, msg.sender, r.parent);
            emit AigcData(tokenId, abi.encode(r.modelId, input), outputs, abi.encode(proofHash, i));
        }
        return m.batchSize == 1 ? bytes32(commitmentsPacked) : keccak256(commitmentsPacked);
    }

    /// @notice A token's record: its mint's shared fields and its own input and outputs.
    function record(uint256 tokenId) external view returns (Record memory) {
        _requireOwned(tokenId);
        Proven storage p = _proofs[_proofIndex(tokenId)];
        Item storage it = _items[tokenId];
        return Record({
            modelId: p.modelId,
            inferenceId: p.inferenceId,
            inputCommitment: it.inputCommitment,
            outputsHash: it.outputsHash,
            proofHash: p.proofHash,
            creator: p.creator,
            mintedAt: p.mintedAt,
            parent: p.parent,
            proofURI: p.proofURI,
            batchIndex: uint32(tokenId - p.firstToken),
            batchCount: p.count,
            metadataDigest: it.metadataDigest,
            errorPpm: it.errorPpm,
            royaltyReceiver: _royaltyReceiver(p),
            prover: p.prover,
            lineageProven: p.parent != 0
                && registry.registration(p.modelId).inputFrom == _proofs[_proofIndex(p.parent)].modelId
        });
    }

    /// A proven lineage: the child's input instances are the parent token's output instances,
    /// all of them, or the registered slice of them (the registry fixed the child's batch size
    /// at 1 and its slice within the parent's `outputCount`).
    function _checkLineage(
        MintRequest calldata r,
        ModelRegistry.Registration memory m,
        uint32 parentOutputCount,
        uint256[] calldata instances
    ) private view {
        bytes32 outputs = _items[r.parent].outputsHash;
        bytes32 inputs = Inference.inputsHash(m, instances);
        if (m.inputFromStart == 0 && m.inputCount == parentOutputCount) {
            if (inputs != outputs) revert ProvenanceTokenLineageMismatch(r.parent, outputs, inputs);
            return;
        }
        bytes32 given = keccak256(abi.encodePacked(r.parentOutputs));
        if (given != outputs) revert ProvenanceTokenParentOutputsMismatch(r.parent, outputs, given);
        bytes32 slice = keccak256(abi.encodePacked(Inference.slice(r.parentOutputs, m.inputFromStart, m.inputCount)));
        if (inputs != slice) revert ProvenanceTokenLineageMismatch(r.parent, slice, inputs);
    }

    /// A derivative's royalty receiver: a split between the model's split and the parent's
    /// creator, by the parent model's license, and only where the child's model agreed to pay
    /// that parent model (it is that model, registered it as its parent, or takes its input
    /// from it): a third party's
    /// license never takes a model's royalty. Checks the parent may be named at all, and a
    /// proven lineage (see mint).
    function _derivativeSplit(MintRequest calldata r, ModelRegistry.Registration memory m, uint256[] calldata instances)
        private
        returns (address)
    {
        (uint256 parent, bytes32 modelId) = (r.parent, r.modelId);
        address parentOwner = _ownerOf(parent);
        if (parentOwner == address(0)) revert ProvenanceTokenUnknownParent(parent);
        if (!_isAuthorized(parentOwner, msg.sender, parent)) revert ProvenanceTokenParentNotAuthorized(parent, msg.sender);
        Proven storage pp = _proofs[_proofIndex(parent)];
        ModelRegistry.Registration memory pm = registry.registration(pp.modelId);
        if (m.inputFrom != bytes32(0) && pp.modelId == m.inputFrom) _checkLineage(r, m, pm.outputCount, instances);
        ModelRegistry.License memory license = pm.license;
        if (!license.derivativesAllowed) revert ProvenanceTokenDerivativesNotAllowed(parent, pp.modelId);
        address modelSplit = registry.model(modelId).royaltyReceiver;
        if (license.parentShareBps == 0) return modelSplit;
        if (pp.modelId != modelId && pp.modelId != m.parentModel && pp.modelId != m.inputFrom) {
            revert ProvenanceTokenParentShareNotAgreed(parent, pp.modelId, modelId);
        }
        if (license.parentShareBps == registry.ALL_SHARES()) return pp.creator;
        address[] memory payees = new address[](2);
        uint16[] memory shares = new uint16[](2);
        (payees[0], shares[0]) = (modelSplit, registry.ALL_SHARES() - license.parentShareBps);
        (payees[1], shares[1]) = (pp.creator, license.parentShareBps);
        return registry.newSplit(payees, shares);
    }

    /// The prover's split: the license's prover share to the prover, the rest to what the
    /// token would pay without one (a derivative's split, or the model's).
    function _proverSplit(address receiver, bytes32 modelId, ModelRegistry.Registration memory m, address prover)
        private
        returns (address)
    {
        address[] memory payees = new address[](2);
        uint16[] memory shares = new uint16[](2);
        uint16 share = m.license.proverShareBps;
        address rest = receiver != address(0) ? receiver : registry.model(modelId).royaltyReceiver;
        if (share == registry.ALL_SHARES()) return prover;
        (payees[0], shares[0]) = (rest, registry.ALL_SHARES() - share);
        (payees[1], shares[1]) = (prover, share);
        return registry.newSplit(payees, shares);
    }

    function _royaltyReceiver(Proven storage p) private view returns (address) {
        address own = p.royaltyReceiver;
        return own != address(0) ? own : registry.model(p.modelId).royaltyReceiver;
    }

    // ---- ERC-7007 ----

    /// @notice Re-attach AIGC data to an existing token (the owner only); it must verify and
    /// match the token's recorded inference.
    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
    {
        if (ownerOf(tokenId) != msg.sender) revert ProvenanceTokenNotTokenOwner(tokenId, msg.sender);
        Proven storage p = _proofs[_proofIndex(tokenId)];
        Item storage it = _items[tokenId];
        (bytes32 modelId, bytes32 inputCommitment) = abi.decode(prompt, (bytes32, bytes32));
        (,,, uint256 index) = abi.decode(proof, (bytes, uint256[], bytes32[], uint256));
        if (
            modelId != p.modelId || inputCommitment != it.inputCommitment || index != tokenId - p.firstToken
                || keccak256(aigcData) != it.outputsHash || !this.verify(prompt, aigcData, proof)
        ) revert ProvenanceTokenDataMismatch(tokenId);
        emit AigcData(tokenId, prompt, aigcData, proof);
    }

    /// @notice True when `proof` verifies for the model in `prompt`, was minted here under
    /// that registration (not an alias of its verifier), and its instances carry, at the item
    /// `index` in `proof` (a real inference of that mint, not padding), exactly that input
    /// commitment and those outputs.
    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
        view
        returns (bool success)
    {
        (bytes32 modelId, bytes32 inputCommitment) = abi.decode(prompt, (bytes32, bytes32));
        (bytes memory zkProof, uint256[] memory instances, bytes32[] memory vka, uint256 index) =
            abi.decode(proof, (bytes, uint256[], bytes32[], uint256));
        if (!registry.isRegistered(modelId)) return false;
        ModelRegistry.Registration memory m = registry.registration(modelId);
        if (instances.length != m.instanceCount) return false;
        uint256 first = tokenOfInference[_inferenceId(modelId, instances)];
        if (first == 0) return false;
        Proven storage p = _proofs[_proofIndex(first)];
        if (p.modelId != modelId || index >= p.count) return false;
        return Inference.inputCommitment(m, instances, index) == inputCommitment
            && keccak256(Inference.outputs(m, instances, index)) == keccak256(aigcData)
            && registry.checkInference(modelId, zkProof, instances, vka);
    }

    // ---- royalties (ERC-2981): the model's split, or a derivative's own ----

    /// @notice The royalty on a sale of `tokenId`, paid to a RoyaltySplit (see record's
    /// royaltyReceiver). Reverts for a token that doesn't exist (ERC721NonexistentToken)
    /// rather than answer with a neighbour's terms.
    function royaltyInfo(uint256 tokenId, uint256 salePrice) public view override returns (address, uint256) {
        _requireOwned(tokenId);
        Proven storage p = _proofs[_proofIndex(tokenId)];
        uint96 bps = registry.registration(p.modelId).royaltyBps;
        return (_royaltyReceiver(p), (salePrice * bps) / 10_000);
    }

    // ---- metadata ----

    /// @notice `ipfs://<CID>` of the token's ERC-7007 metadata JSON: the CIDv1 of a single raw
    /// block (codec 0x55, sha2-256) with the digest the mint recorded, in base32.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        return string.concat("ipfs://", _rawCid(_items[tokenId].metadataDigest));
    }

    function _rawCid(bytes32 digest) private pure returns (string memory) {
        bytes memory data = abi.encodePacked(bytes4(0x01551220), digest);
        bytes memory out = new bytes(59); // "b" (multibase base32) + ceil(36 * 8 / 5) characters
        out[0] = "b";
        uint256 buffer;
        uint256 bits;
        uint256 j = 1;
        for (uint256 i = 0; i < data.length; ++i) {
            buffer = (buffer << 8) | uint8(data[i]); // only the low `bits` bits are ever read
            bits += 8;
            while (bits >= 5) {
                bits -= 5;
                out[j++] = BASE32[(buffer >> bits) & 31];
            }
        }
        if (bits > 0) out[j] = BASE32[(buffer << (5 - bits)) & 31];
        return string(out);
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, ERC2981, IERC165) returns (bool) {
        return interfaceId == type(IERC7007).interfaceId || super.supportsInterface(interfaceId);
    }

    // ---- internals ----

    /// The index in `_proofs` of the mint that created `tokenId` (which exists).
    function _proofIndex(uint256 tokenId) internal view returns (uint256 lo) {
        uint256 hi = _proofs.length;
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_proofs[mid].firstToken <= tokenId) lo = mid;
            else hi = mid;
        }
    }

    // Only characters a URI needs (RFC 3986's unreserved and reserved sets, and percent
    // escapes): never a quote or backslash that could end a JSON string, nor a control character.
    function _checkURI(string calldata uri) private pure {
        bytes calldata b = bytes(uri);
        for (uint256 i = 0; i < b.length; ++i) {
            bytes1 c = b[i];
            bool ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "-"
                || c == "." || c == "_" || c == "~" || c == ":" || c == "/" || c == "?" || c == "#" || c == "@"
                || c == "!" || c == "$" || c == "&" || c == "(" || c == ")" || c == "*" || c == "+" || c == ","
                || c == ";" || c == "=" || c == "%" || c == "[" || c == "]";
            if (!ok) revert ProvenanceTokenUnsafeURI(i);
        }
    }
}
