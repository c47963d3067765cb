// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {ModelRegistry} from "./ModelRegistry.sol";

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
/// (committed) input, and pays royalties to the model's owner.
///
/// ERC-7007 encodings: prompt = abi.encode(circuitHash, inputCommitment);
/// aigcData = abi.encodePacked(output instances); proof = abi.encode(zkProof, instances, vka)
/// (vka empty unless the model uses a reusable verifier).
///
/// Front-running: mint is the reveal of an earlier commit of
/// keccak256(abi.encode(minter, inferenceId, salt)), made in an earlier block. A proof copied
/// from a pending mint can't be minted by anyone else: they hold no such commitment, and
/// by the time they could make one, the inference is minted.
contract ProvenanceToken is ERC721, ERC2981, IERC7007 {
    using Strings for uint256;
    using Strings for address;

    struct Record {
        bytes32 circuitHash;
        bytes32 inferenceId;
        bytes32 inputCommitment;
        bytes32 outputsHash;
        bytes32 proofHash;
        address creator;
        uint64 mintedAt;
        uint256 parent;
        string proofURI;
    }

    struct MintRequest {
        bytes32 circuitHash;
        address to;
        uint256 parent;
        bytes32 inputCommitment;
        bytes32 salt;
        string proofURI;
    }

    ModelRegistry public immutable registry;
    uint256 public totalMinted;
    mapping(uint256 tokenId => Record) private _records;
    mapping(bytes32 inferenceId => uint256 tokenId) public tokenOfInference;
    mapping(bytes32 commitment => uint256 blockNumber) public commitments;

    event Committed(bytes32 indexed commitment, address indexed committer);
    event Minted(uint256 indexed tokenId, bytes32 indexed circuitHash, bytes32 indexed inferenceId, address creator, uint256 parent);

    error ProvenanceTokenAlreadyMinted(bytes32 inferenceId, uint256 tokenId);
    error ProvenanceTokenNoCommitment(bytes32 commitment);
    error ProvenanceTokenCommitTooRecent(bytes32 commitment, uint256 committedAt);
    error ProvenanceTokenInputMismatch(bytes32 expected, bytes32 proven);
    error ProvenanceTokenUnknownParent(uint256 parent);
    error ProvenanceTokenInstancesTooShort(uint256 length, uint256 needed);
    error ProvenanceTokenNotTokenOwner(uint256 tokenId, address caller);
    error ProvenanceTokenDataMismatch(uint256 tokenId);

    constructor(ModelRegistry registry_) ERC721("proofmint provenance", "PMINT") {
        registry = registry_;
    }

    // ---- commit / reveal mint ----

    /// @notice The commitment a minter publishes before revealing: binds minter, inference and salt.
    function commitmentFor(address minter, bytes32 inferenceId, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encode(minter, inferenceId, salt));
    }

    function inferenceIdOf(bytes32 circuitHash, uint256[] calldata instances) public pure returns (bytes32) {
        return keccak256(abi.encode(circuitHash, keccak256(abi.encodePacked(instances))));
    }

    function commit(bytes32 commitment) external {
        if (commitments[commitment] == 0) commitments[commitment] = block.number;
        emit Committed(commitment, msg.sender);
    }

    /// @notice Mint the token of a proven inference.
    /// Requirements:
    /// - the caller committed to (caller, inferenceId, salt) in an earlier block;
    /// - the inference was never minted;
    /// - the proof verifies on-chain for the registered model;
    /// - `inputCommitment` equals the commitment of the proven input instances;
    /// - `parent` is 0 or an existing token.
    function mint(MintRequest calldata r, bytes calldata zkProof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (uint256 tokenId)
    {
        bytes32 inferenceId = inferenceIdOf(r.circuitHash, instances);
        if (tokenOfInference[inferenceId] != 0) {
            revert ProvenanceTokenAlreadyMinted(inferenceId, tokenOfInference[inferenceId]);
        }
        bytes32 c = commitmentFor(msg.sender, inferenceId, r.salt);
        uint256 at = commitments[c];
        if (at == 0) revert ProvenanceTokenNoCommitment(c);
        if (at >= block.number) revert ProvenanceTokenCommitTooRecent(c, at);
        if (r.parent != 0 && _ownerOf(r.parent) == address(0)) revert ProvenanceTokenUnknownParent(r.parent);

        registry.verifyInference(r.circuitHash, zkProof, instances, vka);
        ModelRegistry.Model memory m = registry.model(r.circuitHash);
        bytes32 proven = _inputCommitment(m, instances);
        if (proven != r.inputCommitment) revert ProvenanceTokenInputMismatch(r.inputCommitment, proven);
        bytes memory outputs = _outputs(m, instances);

        delete commitments[c];
        tokenId = ++totalMinted;
        tokenOfInference[inferenceId] = tokenId;
        _records[tokenId] = Record({
            circuitHash: r.circuitHash,
            inferenceId: inferenceId,
            inputCommitment: proven,
            outputsHash: keccak256(outputs),
            proofHash: keccak256(zkProof),
            creator: msg.sender,
            mintedAt: uint64(block.timestamp),
            parent: r.parent,
            proofURI: r.proofURI
        });
        _safeMint(r.to, tokenId);
        emit Minted(tokenId, r.circuitHash, inferenceId, msg.sender, r.parent);
        emit AigcData(tokenId, abi.encode(r.circuitHash, proven), outputs, abi.encode(zkProof, instances, vka));
    }

    function record(uint256 tokenId) external view returns (Record memory) {
        _requireOwned(tokenId);
        return _records[tokenId];
    }

    // ---- ERC-7007 ----

    /// @notice Re-attach AIGC data to an existing token (the owner only); it must verify and
    /// match the token's recorded inference.
    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
    {
        if (ownerOf(tokenId) != msg.sender) revert ProvenanceTokenNotTokenOwner(tokenId, msg.sender);
        Record storage rec = _records[tokenId];
        (bytes32 circuitHash, bytes32 inputCommitment) = abi.decode(prompt, (bytes32, bytes32));
        if (
            circuitHash != rec.circuitHash || inputCommitment != rec.inputCommitment
                || keccak256(aigcData) != rec.outputsHash || !this.verify(prompt, aigcData, proof)
        ) revert ProvenanceTokenDataMismatch(tokenId);
        emit AigcData(tokenId, prompt, aigcData, proof);
    }

    /// @notice True when `proof` verifies for the model in `prompt` and its instances carry
    /// exactly that input commitment and those outputs.
    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
        view
        returns (bool success)
    {
        (bytes32 circuitHash, bytes32 inputCommitment) = abi.decode(prompt, (bytes32, bytes32));
        (bytes memory zkProof, uint256[] memory instances, bytes32[] memory vka) =
            abi.decode(proof, (bytes, uint256[], bytes32[]));
        if (!registry.isRegistered(circuitHash)) return false;
        ModelRegistry.Model memory m = registry.model(circuitHash);
        if (instances.length < m.outputStart + m.outputCount || instances.length < m.inputStart + m.inputCount) {
            return false;
        }
        return _inputCommitment(m, instances) == inputCommitment
            && keccak256(_outputs(m, instances)) == keccak256(aigcData)
            && registry.checkInference(circuitHash, zkProof, instances, vka);
    }

    // ---- royalties (ERC-2981): always the model's registered owner ----

    function royaltyInfo(uint256 tokenId, uint256 salePrice) public view override returns (address, uint256) {
        ModelRegistry.Model memory m = registry.model(_records[tokenId].circuitHash);
        return (m.owner, (salePrice * m.royaltyBps) / 10_000);
    }

    // ---- metadata ----

    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        Record memory r = _records[tokenId];
        ModelRegistry.Model memory m = registry.model(r.circuitHash);
        bytes memory json = abi.encodePacked(
            '{"name":"proofmint #', tokenId.toString(),
            '","description":"A verified AI inference: its EZKL proof was checked on-chain.","model_id":"',
            uint256(m.onnxHash).toHexString(32), '","circuit_id":"', uint256(r.circuitHash).toHexString(32),
            '","input_commitment":"', uint256(r.inputCommitment).toHexString(32),
            '","outputs_hash":"', uint256(r.outputsHash).toHexString(32)
        );
        json = abi.encodePacked(
            json, '","proof_hash":"', uint256(r.proofHash).toHexString(32), '","proof_uri":"', r.proofURI,
            '","verifier":"', m.verifier.toHexString(), '","chain_id":', block.chainid.toString(),
            ',"parent":', r.parent.toString(), ',"creator":"', r.creator.toHexString(), '"}'
        );
        return string.concat("data:application/json;base64,", Base64.encode(json));
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, ERC2981, IERC165) returns (bool) {
        return interfaceId == type(IERC7007).interfaceId || super.supportsInterface(interfaceId);
    }

    // ---- internals ----

    function _inputCommitment(ModelRegistry.Model memory m, uint256[] memory instances) internal pure returns (bytes32) {
        uint256 needed = uint256(m.inputStart) + m.inputCount;
        if (instances.length < needed) revert ProvenanceTokenInstancesTooShort(instances.length, needed);
        if (m.inputHashed) return bytes32(instances[m.inputStart]);
        return keccak256(abi.encodePacked(_slice(instances, m.inputStart, m.inputCount)));
    }

    function _outputs(ModelRegistry.Model memory m, uint256[] memory instances) internal pure returns (bytes memory) {
        uint256 needed = uint256(m.outputStart) + m.outputCount;
        if (instances.length < needed) revert ProvenanceTokenInstancesTooShort(instances.length, needed);
        return abi.encodePacked(_slice(instances, m.outputStart, m.outputCount));
    }

    function _slice(uint256[] memory a, uint256 start, uint256 count) private pure returns (uint256[] memory out) {
        out = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) out[i] = a[start + i];
    }
}
