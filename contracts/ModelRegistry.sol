// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ModelRegistry
/// @notice Registers proven models (after ERC-7992): which circuit, verifying key and EZKL
/// verifier belong to a model, who owns it, and the royalty it earns. Keyed by circuit hash:
/// one circuit, one verifying key. The verifier is either the circuit's own EZKL verifier
/// (`verifyProof(bytes,uint256[])`) or an EZKL reusable verifier shared by many circuits,
/// which takes the circuit's verifying-key artifact (VKA) as calldata; then the registry
/// keeps the VKA's digest and accepts only that VKA for the model.
contract ModelRegistry {
    struct Model {
        address owner;
        address verifier;
        uint96 royaltyBps;
        bytes32 onnxHash;
        bytes32 vkHash;
        // Where the input and output instances sit in the verifier's public instance vector.
        // A batch proof holds `batchSize` inferences: item i's inputs start at
        // inputStart + i * inputCount (one shared hash when inputHashed), its outputs at
        // outputStart + i * outputCount.
        uint32 batchSize;
        uint32 inputStart;
        uint32 inputCount;
        uint32 outputStart;
        uint32 outputCount;
        bool inputHashed;
        bytes32 vkaDigest; // zero for a dedicated verifier
        string metadataURI;
        string licenseURI;
    }

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
        bool inputHashed;
        bytes32 vkaDigest;
        string metadataURI;
        string licenseURI;
    }

    mapping(bytes32 circuitHash => Model) private _models;

    event ModelRegistered(bytes32 indexed circuitHash, bytes32 indexed onnxHash, address indexed owner, address verifier);
    event InferenceVerified(bytes32 indexed circuitHash, bytes32 indexed instancesHash, address indexed caller);

    error ModelRegistryAlreadyRegistered(bytes32 circuitHash);
    error ModelRegistryUnknownModel(bytes32 circuitHash);
    error ModelRegistryInvalidRoyalty(uint96 royaltyBps);
    error ModelRegistryInvalidBatchSize(uint32 batchSize);
    error ModelRegistryNoVerifierCode(address verifier);
    error ModelRegistryProofRejected(bytes32 circuitHash);
    error ModelRegistryWrongVka(bytes32 circuitHash, bytes32 expected, bytes32 given);

    /// @notice Register a model; the caller becomes its owner.
    /// Requirements:
    /// - the circuit is not registered yet;
    /// - `verifier` holds code; `royaltyBps` <= 10000; `batchSize` >= 1.
    function registerModel(Registration calldata r) external {
        if (_models[r.circuitHash].verifier != address(0)) revert ModelRegistryAlreadyRegistered(r.circuitHash);
        if (r.royaltyBps > 10_000) revert ModelRegistryInvalidRoyalty(r.royaltyBps);
        if (r.verifier.code.length == 0) revert ModelRegistryNoVerifierCode(r.verifier);
        if (r.batchSize == 0) revert ModelRegistryInvalidBatchSize(r.batchSize);
        _models[r.circuitHash] = Model({
            owner: msg.sender,
            verifier: r.verifier,
            royaltyBps: r.royaltyBps,
            onnxHash: r.onnxHash,
            vkHash: r.vkHash,
            batchSize: r.batchSize,
            inputStart: r.inputStart,
            inputCount: r.inputCount,
            outputStart: r.outputStart,
            outputCount: r.outputCount,
            inputHashed: r.inputHashed,
            vkaDigest: r.vkaDigest,
            metadataURI: r.metadataURI,
            licenseURI: r.licenseURI
        });
        emit ModelRegistered(r.circuitHash, r.onnxHash, msg.sender, r.verifier);
    }

    function model(bytes32 circuitHash) public view returns (Model memory m) {
        m = _models[circuitHash];
        if (m.verifier == address(0)) revert ModelRegistryUnknownModel(circuitHash);
    }

    function isRegistered(bytes32 circuitHash) external view returns (bool) {
        return _models[circuitHash].verifier != address(0);
    }

    /// @notice True when the EZKL verifier accepts `proof` for `instances`; never reverts on a
    /// bad proof. A staticcall: ezkl's verifyProof is not declared view but writes nothing.
    /// `vka` is the model's verifying-key artifact for a reusable verifier, empty otherwise.
    function checkInference(bytes32 circuitHash, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        public
        view
        returns (bool)
    {
        Model memory m = model(circuitHash);
        bytes memory call;
        if (m.vkaDigest == bytes32(0)) {
            call = abi.encodeWithSignature("verifyProof(bytes,uint256[])", proof, instances);
        } else {
            if (keccak256(abi.encodePacked(vka)) != m.vkaDigest) return false;
            call = abi.encodeWithSignature("verifyProof(bytes,uint256[],bytes32[])", proof, instances, vka);
        }
        (bool ok, bytes memory ret) = m.verifier.staticcall(call);
        return ok && ret.length >= 32 && abi.decode(ret, (bool));
    }

    /// @notice Verify an inference on-chain; reverts with ModelRegistryProofRejected otherwise.
    function verifyInference(bytes32 circuitHash, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bool)
    {
        bytes32 expected = model(circuitHash).vkaDigest;
        if (expected != bytes32(0) && keccak256(abi.encodePacked(vka)) != expected) {
            revert ModelRegistryWrongVka(circuitHash, expected, keccak256(abi.encodePacked(vka)));
        }
        if (!checkInference(circuitHash, proof, instances, vka)) revert ModelRegistryProofRejected(circuitHash);
        emit InferenceVerified(circuitHash, keccak256(abi.encodePacked(instances)), msg.sender);
        return true;
    }
}
