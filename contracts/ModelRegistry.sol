// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ModelRegistry
/// @notice Registers proven models (after ERC-7992): which circuit, verifying key and EZKL
/// verifier belong to a model, who owns it, and the royalty it earns. Keyed by circuit hash:
/// one circuit, one verifying key, one verifier.
contract ModelRegistry {
    struct Model {
        address owner;
        address verifier;
        uint96 royaltyBps;
        bytes32 onnxHash;
        bytes32 vkHash;
        // Where the input and output instances sit in the verifier's public instance vector.
        uint32 inputStart;
        uint32 inputCount;
        uint32 outputStart;
        uint32 outputCount;
        bool inputHashed;
        string metadataURI;
        string licenseURI;
    }

    struct Registration {
        bytes32 circuitHash;
        bytes32 onnxHash;
        bytes32 vkHash;
        address verifier;
        uint96 royaltyBps;
        uint32 inputStart;
        uint32 inputCount;
        uint32 outputStart;
        uint32 outputCount;
        bool inputHashed;
        string metadataURI;
        string licenseURI;
    }

    mapping(bytes32 circuitHash => Model) private _models;

    event ModelRegistered(bytes32 indexed circuitHash, bytes32 indexed onnxHash, address indexed owner, address verifier);
    event InferenceVerified(bytes32 indexed circuitHash, bytes32 indexed instancesHash, address indexed caller);

    error ModelRegistryAlreadyRegistered(bytes32 circuitHash);
    error ModelRegistryUnknownModel(bytes32 circuitHash);
    error ModelRegistryInvalidRoyalty(uint96 royaltyBps);
    error ModelRegistryNoVerifierCode(address verifier);
    error ModelRegistryProofRejected(bytes32 circuitHash);

    /// @notice Register a model; the caller becomes its owner.
    /// Requirements:
    /// - the circuit is not registered yet;
    /// - `verifier` holds code; `royaltyBps` <= 10000.
    function registerModel(Registration calldata r) external {
        if (_models[r.circuitHash].verifier != address(0)) revert ModelRegistryAlreadyRegistered(r.circuitHash);
        if (r.royaltyBps > 10_000) revert ModelRegistryInvalidRoyalty(r.royaltyBps);
        if (r.verifier.code.length == 0) revert ModelRegistryNoVerifierCode(r.verifier);
        _models[r.circuitHash] = Model({
            owner: msg.sender,
            verifier: r.verifier,
            royaltyBps: r.royaltyBps,
            onnxHash: r.onnxHash,
            vkHash: r.vkHash,
            inputStart: r.inputStart,
            inputCount: r.inputCount,
            outputStart: r.outputStart,
            outputCount: r.outputCount,
            inputHashed: r.inputHashed,
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
    function checkInference(bytes32 circuitHash, bytes calldata proof, uint256[] calldata instances)
        public
        view
        returns (bool)
    {
        (bool ok, bytes memory ret) = model(circuitHash).verifier.staticcall(
            abi.encodeWithSignature("verifyProof(bytes,uint256[])", proof, instances)
        );
        return ok && ret.length >= 32 && abi.decode(ret, (bool));
    }

    /// @notice Verify an inference on-chain; reverts with ModelRegistryProofRejected otherwise.
    function verifyInference(bytes32 circuitHash, bytes calldata proof, uint256[] calldata instances)
        external
        returns (bool)
    {
        if (!checkInference(circuitHash, proof, instances)) revert ModelRegistryProofRejected(circuitHash);
        emit InferenceVerified(circuitHash, keccak256(abi.encodePacked(instances)), msg.sender);
        return true;
    }
}
