// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";

/// @title RoyaltySplit
/// @notice An ERC-2981 royalty receiver that splits whatever it is paid among payees in shares
/// fixed once, at initialization; each payee withdraws its due (pull payments: a payee that
/// can't receive never blocks the others).
///
/// OpenZeppelin 5 dropped PaymentSplitter and OZ's Escrow/PullPayment, and 0xSplits publishes
/// no Solidity package; this is the same accounting (what an account is due is its share of
/// everything ever received, minus what it was paid), for ETH, deployed as an OZ `Clones`
/// minimal proxy per split: ~45k gas a split instead of a full contract.
///
/// Rounding: an account is due floor(total * share / 10_000), so at most (payees - 1) wei per
/// payment stay unassigned in the contract until later payments round them up.
contract RoyaltySplit is Initializable {
    uint256 public constant TOTAL_SHARES = 10_000;

    address[] private _payees;
    mapping(address account => uint256) public shares;
    mapping(address account => uint256) public released;
    uint256 public totalReleased;

    /// @notice The split received `amount` wei from `from`.
    event PaymentReceived(address indexed from, uint256 amount);
    /// @notice `to` was paid `amount` wei of its share.
    event PaymentReleased(address indexed to, uint256 amount);

    /// @notice The shares don't sum to TOTAL_SHARES.
    error RoyaltySplitInvalidShares(uint256 total);
    /// @notice A payee is the zero address, appears twice, or has a zero share.
    error RoyaltySplitInvalidPayee(address payee);
    /// @notice Payees and shares differ in length, or there are none.
    error RoyaltySplitLengthMismatch(uint256 payees, uint256 shares);
    /// @notice Nothing is due to this account now.
    error RoyaltySplitNothingDue(address account);

    constructor() {
        _disableInitializers(); // the implementation behind the clones is never a split itself
    }

    /// @notice Fix the payees and their shares (in basis points of TOTAL_SHARES), once.
    function initialize(address[] calldata payees_, uint16[] calldata shares_) external initializer {
        if (payees_.length == 0 || payees_.length != shares_.length) {
            revert RoyaltySplitLengthMismatch(payees_.length, shares_.length);
        }
        uint256 total;
        for (uint256 i = 0; i < payees_.length; ++i) {
            address p = payees_[i];
            if (p == address(0) || shares_[i] == 0 || shares[p] != 0) revert RoyaltySplitInvalidPayee(p);
            shares[p] = shares_[i];
            _payees.push(p);
            total += shares_[i];
        }
        if (total != TOTAL_SHARES) revert RoyaltySplitInvalidShares(total);
    }

    receive() external payable {
        emit PaymentReceived(msg.sender, msg.value);
    }

    /// @notice Every payee, in the order given at initialization.
    function payees() external view returns (address[] memory) {
        return _payees;
    }

    /// @notice What `account` can withdraw now.
    function releasable(address account) public view returns (uint256) {
        uint256 received = address(this).balance + totalReleased;
        return (received * shares[account]) / TOTAL_SHARES - released[account];
    }

    /// @notice Pay `account` what it is due (anyone may trigger it; the money goes to `account`).
    function release(address payable account) external {
        uint256 due = releasable(account);
        if (due == 0) revert RoyaltySplitNothingDue(account);
        released[account] += due;
        totalReleased += due;
        emit PaymentReleased(account, due);
        Address.sendValue(account, due);
    }
}
