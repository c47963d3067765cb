// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {RoyaltySplit} from "./RoyaltySplit.sol";

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
contract ModelRegistry {
    uint96 public constant MAX_ROYALTY_BPS = 2_500;
    uint16 public constant ALL_SHARES = 10_000;

    /// Structured license terms (in the spirit of Story Protocol's PIL); `licenseURI` is the text.
    struct License {
        bool commercialUse;
        bool derivativesAllowed; // may a token name another token of this model as its parent
        bool attributionRequired;
        uint16 parentShareBps; // of a derivative's royalty, to the parent token's creator
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

    /// The RoyaltySplit every split is a minimal clone of.
    address public immutable splitImplementation;

    mapping(bytes32 modelId => Model) private _models;
    mapping(bytes32 modelId => address) public pendingOwner;
    /// The first registration of each circuit hash, ONNX hash, vk hash and verifier key (in that order).
    mapping(bytes32 key => bytes32 modelId)[4] private _first;

    /// @notice A model was registered under `modelId` = keccak256(abi.encode(owner, circuitHash)).
    event ModelRegistered(bytes32 indexed modelId, bytes32 indexed circuitHash, address indexed owner, address verifier);
    /// @notice `verifyInference` accepted a proof for `modelId`.
    event InferenceVerified(bytes32 indexed modelId, bytes32 indexed instancesHash, address indexed caller);
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
    /// @notice The license's parent share is above ALL_SHARES.
    error ModelRegistryInvalidLicense(uint16 parentShareBps);

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
    /// - `parentModel` is zero or registered; the license's parent share <= ALL_SHARES;
    /// - `shares` sum to ALL_SHARES over distinct, non-zero payees.
    function registerModel(
        Registration calldata r,
        bytes32[] calldata vka,
        address[] calldata payees,
        uint16[] calldata shares
    ) external returns (bytes32 modelId) {
        modelId = modelIdOf(msg.sender, r.circuitHash);
        if (_models[modelId].registration.verifier != address(0)) revert ModelRegistryAlreadyRegistered(modelId);
        bytes32 given = vka.length == 0 ? bytes32(0) : keccak256(abi.encodePacked(vka));
        if (given != r.vkaDigest) revert ModelRegistryWrongVka(modelId, r.vkaDigest, given);
        if (r.royaltyBps > MAX_ROYALTY_BPS) revert ModelRegistryInvalidRoyalty(r.royaltyBps);
        if (r.verifier.code.length == 0) revert ModelRegistryNoVerifierCode(r.verifier);
        if (r.parentModel != bytes32(0) && _models[r.parentModel].registration.verifier == address(0)) {
            revert ModelRegistryUnknownModel(r.parentModel);
        }
        if (r.license.parentShareBps > ALL_SHARES) revert ModelRegistryInvalidLicense(r.license.parentShareBps);
        _checkLayout(r);
        Model storage m = _models[modelId];
        m.registration = r;
        m.owner = msg.sender;
        m.verifierCodeHash = r.verifier.codehash;
        m.royaltyReceiver = newSplit(payees, shares);
        if (vka.length != 0) m.vkDigest = vka[0];
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
    /// inference space.
    function verifierKey(bytes32 modelId) public view returns (bytes32) {
        Model storage m = _models[modelId];
        if (m.registration.verifier == address(0)) revert ModelRegistryUnknownModel(modelId);
        return m.vkDigest == bytes32(0) ? m.verifierCodeHash : keccak256(abi.encode(m.verifierCodeHash, m.vkDigest));
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
    function checkInference(bytes32 modelId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        public
        view
        returns (bool)
    {
        Model memory m = model(modelId);
        Registration memory r = m.registration;
        if (r.verifier.codehash != m.verifierCodeHash || instances.length != r.instanceCount) return false;
        bytes memory call;
        if (r.vkaDigest == bytes32(0)) {
            call = abi.encodeWithSignature("verifyProof(bytes,uint256[])", proof, instances);
        } else {
            if (keccak256(abi.encodePacked(vka)) != r.vkaDigest) return false;
            call = abi.encodeWithSignature("verifyProof(bytes,uint256[],bytes32[])", proof, instances, vka);
        }
        (bool ok, bytes memory ret) = r.verifier.staticcall(call);
        // ezkl's verifiers return a bool first (the reusable one more words after it); anything
        // shorter, or any word other than exactly 1, is a rejection rather than a decode revert.
        return ok && ret.length >= 32 && uint256(bytes32(ret)) == 1;
    }

    /// @notice Verify an inference on-chain; reverts with ModelRegistryProofRejected otherwise.
    function verifyInference(bytes32 modelId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bool)
    {
        Model memory m = model(modelId);
        bytes32 vkaDigest = m.registration.vkaDigest;
        if (vkaDigest != bytes32(0) && keccak256(abi.encodePacked(vka)) != vkaDigest) {
            revert ModelRegistryWrongVka(modelId, vkaDigest, keccak256(abi.encodePacked(vka)));
        }
        if (m.registration.verifier.codehash != m.verifierCodeHash) revert ModelRegistryVerifierChanged(modelId);
        if (!checkInference(modelId, proof, instances, vka)) revert ModelRegistryProofRejected(modelId);
        emit InferenceVerified(modelId, keccak256(abi.encodePacked(instances)), msg.sender);
        return true;
    }
}
