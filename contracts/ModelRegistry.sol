// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {RoyaltySplit} from "./RoyaltySplit.sol";

/// @notice ERC-7992 (Draft, "Verifiable ML Model Inference (ZKML)"): its verifier interface,
/// as the draft writes it (`IERCZKMLVerifier`; ERC-165 id: these three functions' selectors
/// XORed). Only the errors this registry raises are declared.
interface IERCZKMLVerifier {
    event InferenceVerified(uint256 indexed modelId, bytes32 indexed inputCommitment, bytes output, address indexed caller);

    error InvalidProof();
    error InputCommitmentMismatch();
    error OutputMismatch();

    function verifyInference(uint256 modelId, bytes32 inputCommitment, bytes calldata output, bytes calldata proof)
        external;

    function proofSystemOf(uint256 modelId) external view returns (bytes4);

    function registry() external view returns (address registryAddress);
}

/// @title ModelRegistry
/// @notice Registers proven models (after ERC-7992): which circuit, verifying key and EZKL
/// verifier belong to a model, where its ONNX file and training-data manifest are (content
/// addressed), its version and parent model, its license terms, who owns it, and who shares
/// the royalty it earns.
///
/// Trust model (see SECURITY.md):
/// - A registration's id is keccak256(abi.encode(registrant, circuitHash)): it names who
///   registered which circuit, so nobody can take another registrant's id (no squatting),
///   and the same circuit registered by someone else is a different, distinguishable model.
/// - The registry records the verifier's code hash at registration. Which key that code
///   embeds can't be checked on-chain: `proofmint verify-asset` renders the verifier from
///   the registered verifying key and compares the code.
/// - Replay protection does not trust the id: `verifierKey` (the verifier's code hash, and
///   for a reusable verifier the verifying key's digest, the VKA's first word) is what a
///   proof is checked against, and the token keys inferences by it, so registrations that
///   alias one verifier share one inference space. A VKA word the verifier ignores changes the
///   VKA's digest, not the key. Another contract (a forwarder, a recompiled copy, the reusable
///   verifier for a circuit registered with its dedicated one) is another key: the chain can't
///   see that it checks the same circuit. `firstRegistrations` names the first registration of
///   each circuit, ONNX and vk hash and verifier key, so `proofmint show` and `verify-asset`
///   flag a later registration by someone else as an alias of it.
/// - The instance layout must fit the verifier's instance count, with outputs bound
///   (outputCount > 0) and input and output slices apart; royalties are capped.
/// - Royalties go to a RoyaltySplit made at registration: payees and shares are fixed then
///   (an ownership transfer moves control of the model, not its royalty shares).
/// - What the URIs point to is content, checked off-chain: `modelURI`'s bytes must hash to
///   `onnxHash`, the training manifest to `trainingDataRoot` (see SECURITY.md).
/// - A model too big for one circuit is registered as linked segments
///   (`registerSegmentedModel`): a verifier (or VKA) per segment, in order, and per link the
///   instance positions of segment i that must equal those of segment i+1. Its proof is every
///   segment's proof (ABI-encoded `bytes[]`), its instances theirs back to back (the input
///   slice in the first segment's, the outputs in the last's), its VKA theirs back to back;
///   `checkInference` accepts it only when every segment's verifier accepts its proof and
///   every link holds. Its verifier key covers every segment's verifier and instance count,
///   never the links a registration chooses.
/// - Lineage: a registration may declare that its input is another registration's output
///   (`inputFrom`), whole or a slice of it (`inputFromStart`, `inputCount` instances: one
///   output tensor of several, or a range of one public tensor): one inference a proof, and a
///   token of it that names a token of that model as its parent mints only if its proven
///   inputs are that token's proven outputs there (ProvenanceToken: lineage proven).
/// - Fidelity (`fidelity`) is the registrant's statement of the circuit's measured error: the
///   chain can't measure it; `proofmint verify-asset` compares it with the published package.
/// - ERC-7992 (draft): the registry is also its verifier (`IERCZKMLVerifier`: `verifyInference`
///   of one inference, `proofSystemOf`, `registry`) and answers its registry's `getModel` view
///   with a `ModelCommitment`. Its write side (`registerModel(ModelCommitment)`, `updateModel`,
///   `deprecateModel`) is not offered: a commitment names no verifier or instance layout, and a
///   registration never changes (a new model is a new id), so no model is ever deprecated.
contract ModelRegistry is IERCZKMLVerifier, IERC165 {
    uint96 public constant MAX_ROYALTY_BPS = 2_500;
    uint16 public constant ALL_SHARES = 10_000;
    /// Tags a segmented model's verifier key: no single verifier's key is ever one.
    bytes32 private constant SEGMENTED_KEY = keccak256("proofmint.segmented");
    /// ERC-7992's proofSystemId of every model here: EZKL's Halo2 (KZG, BN254) verifiers, as ezkl 23 renders them.
    bytes4 public constant PROOF_SYSTEM_ID = bytes4(keccak256("ezkl-halo2-kzg-bn254-v23"));
    /// A Fidelity's argmaxBps for a model that is no classifier.
    uint16 public constant NO_ARGMAX = type(uint16).max;

    /// Structured license terms (in the spirit of Story Protocol's PIL); `licenseURI` is the text.
    struct License {
        bool commercialUse;
        bool derivativesAllowed; // may a token name another token of this model as its parent
        bool attributionRequired;
        uint16 parentShareBps; // of a derivative's royalty, to the parent token's creator
        uint16 proverShareBps; // of a token's royalty, to whoever proved it (a prover-signed mint)
    }

    /// The circuit's measured fidelity to the float model, as compile measured it on held-out
    /// samples (the registrant's statement: see the contract's notes).
    struct Fidelity {
        uint32 errorPpm; // max |circuit - float| in millionths of the float outputs' span, rounded up
        uint32 samples; // held-out samples it was measured on; 0: no statement
        uint16 argmaxBps; // argmax agreement in basis points, rounded down; NO_ARGMAX for no classifier
        bytes32 referenceEngine; // the float engine measured against, as a short string ("onnxruntime")
        bytes32 samplesDigest; // sha256 of the held-out samples; zero when compile recorded none
    }

    /// ERC-7992's model commitment (its registry's `getModel` answers with one).
    struct ModelCommitment {
        bytes32 modelHash; // sha256 of the ONNX file: weights and architecture
        bytes32 circuitHash;
        bytes32 vkHash;
        bytes4 proofSystemId;
        string uri; // the circuit's published artifacts (metadataURI)
    }

    /// What a registrant supplies. Where the input and output instances sit in the verifier's
    /// public instance vector: a batch proof holds `batchSize` inferences; item i's inputs
    /// start at inputStart + i * inputCount (one shared hash when inputHashed), its outputs at
    /// outputStart + i * outputCount. A private input has inputCount 0 and is not hashed.
    struct Registration {
        bytes32 circuitHash;
        bytes32 onnxHash;
        bytes32 vkHash;
        address verifier;
        uint96 royaltyBps;
        uint32 batchSize;
        uint32 inputStart;
        uint32 inputCount;
        uint32 outputStart;
        uint32 outputCount;
        uint32 instanceCount;
        bool inputHashed;
        bytes32 vkaDigest; // zero for a dedicated verifier
        string metadataURI; // the circuit's published artifacts (ipfs://: package, settings, vk, SRS)
        string licenseURI;
        string modelURI; // ipfs:// of the ONNX file whose sha256 is onnxHash
        bytes32 trainingDataRoot; // Merkle root (OZ StandardMerkleTree) of the training manifest
        string trainingDataURI; // ipfs:// of that manifest
        string version;
        bytes32 parentModel; // the registration it was fine-tuned from; zero for none
        License license;
        bytes32 inputFrom; // the registration whose outputs are this model's inputs (lineage); zero for none
        // where in one inference's output instances of `inputFrom` this model's input begins: a
        // named slice of them (`inputCount` long); zero, with `inputCount` their count: all of them
        uint32 inputFromStart;
        Fidelity fidelity;
    }

    /// A registered model: the registration, its owner, the verifier's code hash at
    /// registration, the split its royalties are paid to, and for a reusable verifier the
    /// verifying key's digest (the VKA's first word, which seeds every Fiat-Shamir challenge).
    struct Model {
        Registration registration;
        address owner;
        bytes32 verifierCodeHash;
        address royaltyReceiver;
        bytes32 vkDigest;
    }

    /// One segment of a model registered as linked segments, in the chain's order.
    struct Segment {
        bytes32 circuitHash; // the segment circuit's id
        bytes32 vkHash; // sha256 of its verifying key
        address verifier;
        uint32 instanceCount; // its verifier takes exactly this many
        bytes32 vkaDigest; // keccak256 of its VKA words; zero for a dedicated verifier
        uint32 vkaLength; // its words in a proof's VKA (the segments' VKAs back to back)
    }

    /// Between segment i and segment i+1: `outputs[k]` of segment i's instances must equal
    /// `inputs[k]` of segment i+1's (the same hash of a cut tensor, or the same value).
    struct Link {
        uint32[] outputs;
        uint32[] inputs;
    }

    /// A registered segment: as registered, with its verifier's code hash at registration and,
    /// for a reusable verifier, its verifying key's digest (its VKA's first word).
    struct SegmentRecord {
        Segment segment;
        bytes32 codeHash;
        bytes32 vkDigest;
    }

    /// What `checkSegments` found (in the order it checks).
    enum SegmentsVerdict {
        Valid,
        NotSegmented, // a single-circuit model
        Malformed, // the proof is no `bytes[]`, or instances or VKA words don't fit the segments
        SegmentCount, // not one proof per segment (index: how many were given)
        LinkBroken, // index: the link (between segment index and index + 1)
        SegmentRejected // index: the segment whose verifier rejected its proof
    }

    /// The RoyaltySplit every split is a minimal clone of.
    address public immutable splitImplementation;

    mapping(bytes32 modelId => Model) private _models;
    mapping(bytes32 modelId => address) public pendingOwner;
    /// The first registration of each circuit hash, ONNX hash, vk hash and verifier key (in that order).
    mapping(bytes32 key => bytes32 modelId)[4] private _first;
    mapping(bytes32 modelId => SegmentRecord[]) private _segments;
    mapping(bytes32 modelId => Link[]) private _links;
    mapping(bytes32 modelId => bytes32) private _chainKey; // a segmented model's verifier key

    /// @notice A model was registered under `modelId` = keccak256(abi.encode(owner, circuitHash)).
    event ModelRegistered(bytes32 indexed modelId, bytes32 indexed circuitHash, address indexed owner, address verifier);
    /// @notice `verifyInference` accepted a proof (all its inferences) for `modelId`.
    event ProofVerified(bytes32 indexed modelId, bytes32 indexed instancesHash, address indexed caller);
    /// @notice The owner offered the model to `newOwner`, who must accept.
    event OwnershipTransferStarted(bytes32 indexed modelId, address indexed previousOwner, address indexed newOwner);
    /// @notice The model changed owner (its royalty split stays as registered).
    event OwnershipTransferred(bytes32 indexed modelId, address indexed previousOwner, address indexed newOwner);

    /// @notice The caller already registered this circuit.
    error ModelRegistryAlreadyRegistered(bytes32 modelId);
    /// @notice No model is registered under this id.
    error ModelRegistryUnknownModel(bytes32 modelId);
    /// @notice The royalty is above MAX_ROYALTY_BPS.
    error ModelRegistryInvalidRoyalty(uint96 royaltyBps);
    /// @notice The layout doesn't fit the instance count, binds no output, or overlaps.
    error ModelRegistryInvalidLayout(uint32 instanceCount);
    /// @notice The verifier address holds no code.
    error ModelRegistryNoVerifierCode(address verifier);
    /// @notice The verifier rejected the proof.
    error ModelRegistryProofRejected(bytes32 modelId);
    /// @notice A reusable verifier was given another circuit's VKA (at registration: one that
    /// doesn't hash to `vkaDigest`, or a VKA for a dedicated verifier).
    error ModelRegistryWrongVka(bytes32 modelId, bytes32 expected, bytes32 given);
    /// @notice The verifier's code changed since registration (a self-destructed and redeployed address).
    error ModelRegistryVerifierChanged(bytes32 modelId);
    /// @notice Only the model's owner (or the offered new owner) may do this.
    error ModelRegistryUnauthorized(bytes32 modelId, address caller);
    /// @notice The license's parent or prover share is above ALL_SHARES.
    error ModelRegistryInvalidLicense(uint16 parentShareBps, uint16 proverShareBps);
    /// @notice The argmax agreement is neither basis points (<= ALL_SHARES) nor NO_ARGMAX.
    error ModelRegistryInvalidFidelity(uint16 argmaxBps);
    /// @notice A lineage child must take one inference a proof, with a bound input that lies
    /// within `inputFrom`'s outputs from `inputFromStart` (no start without an `inputFrom`).
    error ModelRegistryInvalidLineage(bytes32 modelId, bytes32 inputFrom);
    /// @notice A segmented registration doesn't describe its segments (see registerSegmentedModel).
    error ModelRegistryInvalidSegments(bytes32 modelId);
    /// @notice A link binds nothing, or names a position outside its segments.
    error ModelRegistryInvalidLink(bytes32 modelId, uint256 link);
    /// @notice A segmented proof must hold one proof per segment.
    error ModelRegistrySegmentCount(bytes32 modelId, uint256 given, uint256 expected);
    /// @notice A segment's verifier rejected its proof.
    error ModelRegistrySegmentRejected(bytes32 modelId, uint256 segment);
    /// @notice Segment `link`'s outputs are not segment `link` + 1's inputs.
    error ModelRegistryLinkBroken(bytes32 modelId, uint256 link);

    constructor() {
        splitImplementation = address(new RoyaltySplit());
    }

    /// @notice A new RoyaltySplit paying `payees` their `shares` (basis points summing to
    /// ALL_SHARES; it reverts otherwise). Anyone may make one: a split holds only what is paid to it.
    function newSplit(address[] calldata payees, uint16[] calldata shares) public returns (address split) {
        split = Clones.clone(splitImplementation);
        RoyaltySplit(payable(split)).initialize(payees, shares);
    }

    /// @notice The id a registrant's registration of `circuitHash` gets.
    function modelIdOf(address registrant, bytes32 circuitHash) public pure returns (bytes32) {
        return keccak256(abi.encode(registrant, circuitHash));
    }

    /// @notice Register a model; the caller becomes its owner. Royalties are split among
    /// `payees` (owner, data contributors, ...) by `shares`, fixed here. `vka`: a reusable
    /// verifier's VKA, empty for a dedicated verifier. Returns its id.
    /// Requirements:
    /// - the caller has not registered this circuit yet;
    /// - `vka` hashes to `vkaDigest` (both empty/zero for a dedicated verifier);
    /// - `verifier` holds code; `royaltyBps` <= MAX_ROYALTY_BPS; `batchSize` >= 1;
    /// - outputs are bound (`outputCount` >= 1), input and output slices don't overlap, and
    ///   both fit in `instanceCount`;
    /// - `parentModel` is zero or registered; the license's parent and prover shares <= ALL_SHARES;
    /// - `inputFrom` is zero (and `inputFromStart` too) or registered, and then `batchSize` is 1
    ///   and the input (`inputCount`, not zero) lies within `inputFrom`'s `outputCount` output
    ///   instances from `inputFromStart`;
    /// - the fidelity's `argmaxBps` is <= ALL_SHARES or NO_ARGMAX;
    /// - `shares` sum to ALL_SHARES over distinct, non-zero payees.
    function registerModel(
        Registration calldata r,
        bytes32[] calldata vka,
        address[] calldata payees,
        uint16[] calldata shares
    ) external returns (bytes32 modelId) {
        modelId = _newModelId(r, vka);
        if (r.verifier.code.length == 0) revert ModelRegistryNoVerifierCode(r.verifier);
        _register(modelId, r, vka.length == 0 ? bytes32(0) : vka[0], payees, shares);
    }

    /// @notice Register a model proven as linked segments (one inference, a proof per segment);
    /// the caller becomes its owner. `r` describes the whole chain: its instances are the
    /// segments' back to back, so the input slice lies in the first segment's and the output
    /// slice in the last's. `links[i]` binds segment i to segment i + 1. `vka`: every
    /// segment's VKA back to back, in order (none for a dedicated verifier). Returns its id.
    /// Requirements:
    /// - as registerModel's (the caller's first registration of `r.circuitHash`, `vka` hashing
    ///   to `r.vkaDigest`, terms, payees), with `r.batchSize` 1;
    /// - at least two segments, each with a verifier that holds code, at least one instance,
    ///   and a slice of `vka` (its `vkaLength` words, in order, using all of `vka`) that hashes
    ///   to its `vkaDigest`;
    /// - `r.verifier` is the first segment's verifier, `r.vkHash` is keccak256 of the
    ///   segments' vk hashes packed, `r.instanceCount` the sum of their instance counts;
    /// - the input slice lies within the first segment's instances, the output slice within
    ///   the last's;
    /// - one link per pair of consecutive segments, each binding at least one pair of
    ///   positions, every position within its segment's instances.
    function registerSegmentedModel(
        Registration calldata r,
        Segment[] calldata segments,
        Link[] calldata links,
        bytes32[] calldata vka,
        address[] calldata payees,
        uint16[] calldata shares
    ) external returns (bytes32 modelId) {
        modelId = _newModelId(r, vka);
        uint256 n = segments.length;
        if (n < 2 || links.length != n - 1 || r.batchSize != 1 || r.verifier != segments[0].verifier) {
            revert ModelRegistryInvalidSegments(modelId);
        }
        _chainKey[modelId] = _addSegments(modelId, r, segments, vka);
        for (uint256 i = 0; i + 1 < n; ++i) {
            _addLink(modelId, i, links[i], segments[i].instanceCount, segments[i + 1].instanceCount);
        }
        _register(modelId, r, _segments[modelId][0].vkDigest, payees, shares);
    }

    /// Stores the segments, checking each and how `r` spans them; returns the chain's verifier key.
    function _addSegments(bytes32 modelId, Registration calldata r, Segment[] calldata segments,
        bytes32[] calldata vka) private returns (bytes32) {
        uint256 n = segments.length;
        bytes32[] memory keys = new bytes32[](n);
        uint32[] memory counts = new uint32[](n);
        bytes32[] memory vkHashes = new bytes32[](n);
        uint256 total;
        uint256 words;
        for (uint256 i = 0; i < n; ++i) {
            Segment calldata s = segments[i];
            if (s.verifier.code.length == 0) revert ModelRegistryNoVerifierCode(s.verifier);
            if (s.instanceCount == 0 || words + s.vkaLength > vka.length) revert ModelRegistryInvalidSegments(modelId);
            (keys[i], counts[i], vkHashes[i]) = (_addSegment(modelId, s, vka[words:words + s.vkaLength]),
                s.instanceCount, s.vkHash);
            total += s.instanceCount;
            words += s.vkaLength;
        }
        uint256 lastStart = total - segments[n - 1].instanceCount;
        if (
            words != vka.length || r.instanceCount != total || r.vkHash != keccak256(abi.encodePacked(vkHashes))
                || uint256(r.inputStart) + r.inputCount > segments[0].instanceCount || r.outputStart < lastStart
        ) revert ModelRegistryInvalidSegments(modelId);
        return keccak256(abi.encode(SEGMENTED_KEY, keys, counts));
    }

    /// Stores a segment (its VKA slice checked against its digest); returns its verifier key.
    function _addSegment(bytes32 modelId, Segment calldata s, bytes32[] calldata own) private returns (bytes32) {
        bytes32 given = _digest(own);
        if (given != s.vkaDigest) revert ModelRegistryWrongVka(modelId, s.vkaDigest, given);
        SegmentRecord storage rec = _segments[modelId].push();
        rec.segment = s;
        rec.codeHash = s.verifier.codehash;
        if (own.length != 0) rec.vkDigest = own[0];
        return _key(rec.codeHash, rec.vkDigest);
    }

    function _addLink(bytes32 modelId, uint256 i, Link calldata l, uint32 fromCount, uint32 toCount) private {
        if (l.outputs.length == 0 || l.outputs.length != l.inputs.length) revert ModelRegistryInvalidLink(modelId, i);
        for (uint256 k = 0; k < l.outputs.length; ++k) {
            if (l.outputs[k] >= fromCount || l.inputs[k] >= toCount) revert ModelRegistryInvalidLink(modelId, i);
        }
        Link storage stored = _links[modelId].push();
        stored.outputs = l.outputs;
        stored.inputs = l.inputs;
    }

    /// The id of the caller's registration of `r`, refusing a repeat and a VKA that doesn't
    /// hash to `r.vkaDigest`.
    function _newModelId(Registration calldata r, bytes32[] calldata vka) private view returns (bytes32 modelId) {
        modelId = modelIdOf(msg.sender, r.circuitHash);
        if (_models[modelId].registration.verifier != address(0)) revert ModelRegistryAlreadyRegistered(modelId);
        bytes32 given = _digest(vka);
        if (given != r.vkaDigest) revert ModelRegistryWrongVka(modelId, r.vkaDigest, given);
    }

    function _digest(bytes32[] calldata vka) private pure returns (bytes32) {
        return vka.length == 0 ? bytes32(0) : keccak256(abi.encodePacked(vka));
    }

    /// Checks the terms and layout, stores the model (its verifier's code hash now) with a new
    /// split, and records which registrations came first.
    function _register(
        bytes32 modelId,
        Registration calldata r,
        bytes32 vkDigest,
        address[] calldata payees,
        uint16[] calldata shares
    ) private {
        if (r.royaltyBps > MAX_ROYALTY_BPS) revert ModelRegistryInvalidRoyalty(r.royaltyBps);
        if (r.parentModel != bytes32(0) && _models[r.parentModel].registration.verifier == address(0)) {
            revert ModelRegistryUnknownModel(r.parentModel);
        }
        License calldata l = r.license;
        if (l.parentShareBps > ALL_SHARES || l.proverShareBps > ALL_SHARES) {
            revert ModelRegistryInvalidLicense(l.parentShareBps, l.proverShareBps);
        }
        uint16 argmax = r.fidelity.argmaxBps;
        if (argmax > ALL_SHARES && argmax != NO_ARGMAX) revert ModelRegistryInvalidFidelity(argmax);
        _checkLayout(r);
        if (r.inputFrom != bytes32(0)) _checkLineage(modelId, r);
        else if (r.inputFromStart != 0) revert ModelRegistryInvalidLineage(modelId, r.inputFrom);
        Model storage m = _models[modelId];
        m.registration = r;
        m.owner = msg.sender;
        m.verifierCodeHash = r.verifier.codehash;
        m.royaltyReceiver = newSplit(payees, shares);
        m.vkDigest = vkDigest;
        bytes32[4] memory keys = _firstKeys(modelId);
        for (uint256 i = 0; i < 4; ++i) {
            if (_first[i][keys[i]] == bytes32(0)) _first[i][keys[i]] = modelId;
        }
        emit ModelRegistered(modelId, r.circuitHash, msg.sender, r.verifier);
    }

    function _firstKeys(bytes32 modelId) private view returns (bytes32[4] memory) {
        Registration storage r = _models[modelId].registration;
        return [r.circuitHash, r.onnxHash, r.vkHash, verifierKey(modelId)];
    }

    /// @notice The first registration (by anyone) of this model's circuit hash, ONNX hash, vk
    /// hash and verifier key: `modelId` itself where it was first. The chain can't tell an
    /// original from an alias or a squat; this says which came first, for a reader to weigh
    /// by their owners.
    function firstRegistrations(bytes32 modelId) external view returns (bytes32[4] memory ids) {
        model(modelId);
        bytes32[4] memory keys = _firstKeys(modelId);
        for (uint256 i = 0; i < 4; ++i) ids[i] = _first[i][keys[i]];
    }

    /// A lineage child's input is its parent model's output, whole or a slice of it (one inference a proof).
    function _checkLineage(bytes32 modelId, Registration calldata r) private view {
        Registration storage parent = _models[r.inputFrom].registration;
        if (parent.verifier == address(0)) revert ModelRegistryUnknownModel(r.inputFrom);
        if (r.batchSize != 1 || r.inputCount == 0 || uint256(r.inputFromStart) + r.inputCount > parent.outputCount) {
            revert ModelRegistryInvalidLineage(modelId, r.inputFrom);
        }
    }

    function _checkLayout(Registration calldata r) private pure {
        uint256 inputs = r.inputHashed ? r.inputCount : uint256(r.inputCount) * r.batchSize;
        uint256 inputEnd = uint256(r.inputStart) + inputs;
        uint256 outputEnd = uint256(r.outputStart) + uint256(r.outputCount) * r.batchSize;
        bool apart = inputs == 0 || inputEnd <= r.outputStart || outputEnd <= r.inputStart;
        if (
            r.batchSize == 0 || r.outputCount == 0 || !apart || inputEnd > r.instanceCount
                || outputEnd > r.instanceCount || (r.inputHashed && r.inputCount != 1)
        ) revert ModelRegistryInvalidLayout(r.instanceCount);
    }

    /// @notice The model registered under `modelId`; reverts if there is none.
    function model(bytes32 modelId) public view returns (Model memory m) {
        m = _models[modelId];
        if (m.registration.verifier == address(0)) revert ModelRegistryUnknownModel(modelId);
    }

    /// @notice The registration of `modelId`; reverts if there is none.
    function registration(bytes32 modelId) public view returns (Registration memory) {
        return model(modelId).registration;
    }

    /// @notice Whether a model is registered under `modelId`.
    function isRegistered(bytes32 modelId) external view returns (bool) {
        return _models[modelId].registration.verifier != address(0);
    }

    /// @notice What a proof for this model is checked against: the verifier's code, and for a
    /// reusable verifier the verifying key's digest (not the whole VKA: a word the verifier
    /// ignores makes another VKA, never another key). Registrations that share it share one
    /// inference space. A segmented model's key covers every segment's, with its instance
    /// count (so the same instances split otherwise are another statement), not its links.
    function verifierKey(bytes32 modelId) public view returns (bytes32) {
        Model storage m = _models[modelId];
        if (m.registration.verifier == address(0)) revert ModelRegistryUnknownModel(modelId);
        return _segments[modelId].length != 0 ? _chainKey[modelId] : _key(m.verifierCodeHash, m.vkDigest);
    }

    function _key(bytes32 codeHash, bytes32 vkDigest) private pure returns (bytes32) {
        return vkDigest == bytes32(0) ? codeHash : keccak256(abi.encode(codeHash, vkDigest));
    }

    /// @notice A segmented model's segments, in order, and the links between them (both empty
    /// for a single-circuit model).
    function segmentsOf(bytes32 modelId) external view returns (SegmentRecord[] memory segments, Link[] memory links) {
        model(modelId);
        return (_segments[modelId], _links[modelId]);
    }

    // ---- ownership: two steps, so a typo can't hand a model (and its royalties) away ----

    /// @notice Offer the model to `newOwner`. Requirements: the caller owns the model.
    function transferModelOwnership(bytes32 modelId, address newOwner) external {
        if (model(modelId).owner != msg.sender) revert ModelRegistryUnauthorized(modelId, msg.sender);
        pendingOwner[modelId] = newOwner;
        emit OwnershipTransferStarted(modelId, msg.sender, newOwner);
    }

    /// @notice Accept an offered model. Requirements: the caller is the offered owner.
    function acceptModelOwnership(bytes32 modelId) external {
        if (pendingOwner[modelId] != msg.sender) revert ModelRegistryUnauthorized(modelId, msg.sender);
        address previous = _models[modelId].owner;
        _models[modelId].owner = msg.sender;
        delete pendingOwner[modelId];
        emit OwnershipTransferred(modelId, previous, msg.sender);
    }

    // ---- verification ----

    /// @notice True when the model's EZKL verifier accepts `proof` for `instances`; never
    /// reverts on a bad proof. A staticcall: ezkl's verifyProof is not declared view but
    /// writes nothing. `vka` is the model's verifying-key artifact for a reusable verifier,
    /// empty otherwise. A verifier whose code changed since registration accepts nothing.
    /// For a segmented model: `checkSegments` finds every proof and link valid.
    function checkInference(bytes32 modelId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        public
        view
        returns (bool)
    {
        Model memory m = model(modelId);
        if (_segments[modelId].length != 0) {
            (SegmentsVerdict verdict,) = checkSegments(modelId, proof, instances, vka);
            return verdict == SegmentsVerdict.Valid;
        }
        Registration memory r = m.registration;
        return instances.length == r.instanceCount
            && _verifies(r.verifier, m.verifierCodeHash, r.vkaDigest, proof, instances, vka);
    }

    /// Whether `verifier`, with its registered code, accepts `proof` for `instances` (through
    /// `vka` when `vkaDigest` is not zero: then `vka` must hash to it).
    function _verifies(
        address verifier,
        bytes32 codeHash,
        bytes32 vkaDigest,
        bytes memory proof,
        uint256[] calldata instances,
        bytes32[] calldata vka
    ) private view returns (bool) {
        if (verifier.codehash != codeHash) return false;
        bytes memory call;
        if (vkaDigest == bytes32(0)) {
            call = abi.encodeWithSignature("verifyProof(bytes,uint256[])", proof, instances);
        } else {
            if (keccak256(abi.encodePacked(vka)) != vkaDigest) return false;
            call = abi.encodeWithSignature("verifyProof(bytes,uint256[],bytes32[])", proof, instances, vka);
        }
        (bool ok, bytes memory ret) = verifier.staticcall(call);
        // ezkl's verifiers return a bool first (the reusable one more words after it); anything
        // shorter, or any word other than exactly 1, is a rejection rather than a decode revert.
        return ok && ret.length >= 32 && uint256(bytes32(ret)) == 1;
    }

    /// @notice Check a segmented model's proof without reverting: `proof` is abi.encode(bytes[]
    /// one proof per segment), `instances` the segments' back to back, `vka` their VKAs back to
    /// back. Links are checked before any proof (an equality is cheaper than a pairing); the
    /// first failure is answered, with the link or segment it is in (see SegmentsVerdict).
    function checkSegments(bytes32 modelId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        public
        view
        returns (SegmentsVerdict verdict, uint256 index)
    {
        Registration storage r = _models[modelId].registration;
        if (r.verifier == address(0)) revert ModelRegistryUnknownModel(modelId);
        SegmentRecord[] storage segs = _segments[modelId];
        if (segs.length == 0) return (SegmentsVerdict.NotSegmented, 0);
        bytes[] memory proofs;
        try this.decodeProofs(proof) returns (bytes[] memory decoded) {
            proofs = decoded;
        } catch {
            return (SegmentsVerdict.Malformed, 0);
        }
        if (proofs.length != segs.length) return (SegmentsVerdict.SegmentCount, proofs.length);
        if (r.instanceCount != instances.length) return (SegmentsVerdict.Malformed, 0);
        Link[] storage links = _links[modelId];
        uint256 at;
        for (uint256 i = 0; i < links.length; ++i) {
            uint256 next = at + segs[i].segment.instanceCount;
            Link storage l = links[i];
            for (uint256 k = 0; k < l.outputs.length; ++k) {
                if (instances[at + l.outputs[k]] != instances[next + l.inputs[k]]) return (SegmentsVerdict.LinkBroken, i);
            }
            at = next;
        }
        at = 0;
        uint256 words;
        for (uint256 i = 0; i < segs.length; ++i) {
            SegmentRecord storage s = segs[i];
            (uint256 n, uint256 w) = (s.segment.instanceCount, s.segment.vkaLength);
            if (words + w > vka.length) return (SegmentsVerdict.Malformed, i);
            if (!_verifies(s.segment.verifier, s.codeHash, s.segment.vkaDigest, proofs[i], instances[at:at + n],
                    vka[words:words + w])) return (SegmentsVerdict.SegmentRejected, i);
            (at, words) = (at + n, words + w);
        }
        if (words != vka.length) return (SegmentsVerdict.Malformed, segs.length);
        return (SegmentsVerdict.Valid, 0);
    }

    /// @notice A segmented proof's segments (abi.decode as bytes[]): external, so that
    /// `checkSegments` can catch a blob that is no such encoding instead of reverting.
    function decodeProofs(bytes calldata proof) external pure returns (bytes[] memory) {
        return abi.decode(proof, (bytes[]));
    }

    /// @notice Verify a proof on-chain (every inference of a batch); reverts with
    /// ModelRegistryProofRejected otherwise (for a segmented model, with the segment or link
    /// that failed where there is one). ERC-7992's one-inference form is the overload below.
    function verifyInference(bytes32 modelId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bool)
    {
        Model memory m = model(modelId);
        bytes32 vkaDigest = m.registration.vkaDigest;
        if (vkaDigest != bytes32(0) && keccak256(abi.encodePacked(vka)) != vkaDigest) {
            revert ModelRegistryWrongVka(modelId, vkaDigest, keccak256(abi.encodePacked(vka)));
        }
        SegmentRecord[] storage segs = _segments[modelId];
        if (segs.length == 0) {
            if (m.registration.verifier.codehash != m.verifierCodeHash) revert ModelRegistryVerifierChanged(modelId);
            if (!checkInference(modelId, proof, instances, vka)) revert ModelRegistryProofRejected(modelId);
        } else {
            for (uint256 i = 0; i < segs.length; ++i) {
                if (segs[i].segment.verifier.codehash != segs[i].codeHash) revert ModelRegistryVerifierChanged(modelId);
            }
            (SegmentsVerdict verdict, uint256 index) = checkSegments(modelId, proof, instances, vka);
            if (verdict == SegmentsVerdict.SegmentCount) revert ModelRegistrySegmentCount(modelId, index, segs.length);
            if (verdict == SegmentsVerdict.LinkBroken) revert ModelRegistryLinkBroken(modelId, index);
            if (verdict == SegmentsVerdict.SegmentRejected) revert ModelRegistrySegmentRejected(modelId, index);
            if (verdict != SegmentsVerdict.Valid) revert ModelRegistryProofRejected(modelId);
        }
        emit ProofVerified(modelId, keccak256(abi.encodePacked(instances)), msg.sender);
        return true;
    }

    // ---- ERC-7992 (draft): the verifier interface and the registry's model commitment ----

    /// @notice ERC-7992: verify one inference of `modelId` (the registration id as a uint256).
    /// `proof` = abi.encode(bytes zkProof, uint256[] instances, bytes32[] vka, uint256 index),
    /// the token's ERC-7007 proof encoding: `index` names the inference in a batch proof.
    /// `inputCommitment` and `output` are the token's for it (ProvenanceToken's notes:
    /// abi.encodePacked of the output instances). Reverts on any failure (an unknown model:
    /// ModelRegistryUnknownModel); emits InferenceVerified. Stateless: it mints nothing and
    /// guards no replay.
    function verifyInference(uint256 modelId, bytes32 inputCommitment, bytes calldata output, bytes calldata proof)
        external
    {
        Registration memory r = model(bytes32(modelId)).registration;
        (bytes memory zkProof, uint256[] memory instances, bytes32[] memory vka, uint256 index) =
            abi.decode(proof, (bytes, uint256[], bytes32[], uint256));
        if (index >= r.batchSize || instances.length != r.instanceCount) revert InvalidProof();
        if (Inference.inputCommitment(r, instances, index) != inputCommitment) revert InputCommitmentMismatch();
        if (keccak256(Inference.outputs(r, instances, index)) != keccak256(output)) revert OutputMismatch();
        if (!this.checkInference(bytes32(modelId), zkProof, instances, vka)) revert InvalidProof();
        emit InferenceVerified(modelId, inputCommitment, output, msg.sender);
    }

    /// @notice ERC-7992: every model here is proven with PROOF_SYSTEM_ID.
    function proofSystemOf(uint256 modelId) external view returns (bytes4) {
        model(bytes32(modelId));
        return PROOF_SYSTEM_ID;
    }

    /// @notice ERC-7992: the registry this verifier reads: itself.
    function registry() external view returns (address) {
        return address(this);
    }

    /// @notice ERC-7992's registry view: the model's commitment, never deprecated (a
    /// registration does not change), and its owner.
    function getModel(uint256 modelId)
        external
        view
        returns (ModelCommitment memory commitment, bool deprecated, address owner)
    {
        Model memory m = model(bytes32(modelId));
        Registration memory r = m.registration;
        return (ModelCommitment(r.onnxHash, r.circuitHash, r.vkHash, PROOF_SYSTEM_ID, r.metadataURI), false, m.owner);
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == type(IERCZKMLVerifier).interfaceId || interfaceId == type(IERC165).interfaceId;
    }
}

/// @title Inference
/// @notice How one inference is read from a proof's instances, by the token and by ERC-7992's
/// verifyInference alike (see ProvenanceToken's notes on input commitments).
library Inference {
    /// Public input: keccak256 of the item's input instances; hashed input: the proof's
    /// Poseidon hash (batch size 1) or keccak256(abi.encode(hash, index)) (a batch shares one
    /// hash); private input: keccak256("").
    function inputCommitment(ModelRegistry.Registration memory m, uint256[] memory instances, uint256 index)
        internal
        pure
        returns (bytes32)
    {
        if (m.inputHashed) {
            bytes32 hash = bytes32(instances[m.inputStart]);
            return m.batchSize == 1 ? hash : keccak256(abi.encode(hash, index));
        }
        return keccak256(abi.encodePacked(slice(instances, m.inputStart + index * m.inputCount, m.inputCount)));
    }

    /// abi.encodePacked of the item's output instances (the token's aigcData; keccak: its outputs hash).
    function outputs(ModelRegistry.Registration memory m, uint256[] memory instances, uint256 index)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodePacked(slice(instances, m.outputStart + index * m.outputCount, m.outputCount));
    }

    /// keccak256 of a one-inference proof's input instances packed: the form of an outputs
    /// hash, so a lineage child's inputs compare with its parent's outputs (the same values,
    /// or under hashed visibility the same Poseidon hash).
    function inputsHash(ModelRegistry.Registration memory m, uint256[] memory instances)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(slice(instances, m.inputStart, m.inputCount)));
    }

    function slice(uint256[] memory a, uint256 start, uint256 count) internal pure returns (uint256[] memory out) {
        out = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) out[i] = a[start + i];
    }
}
