// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The parts of StakeVault that ServerRegistry and DisputeCourt use.
interface IStakeVault {
    function minStake() external view returns (uint256);
    function unbondingPeriod() external view returns (uint64);
    function stakeOf(address operator) external view returns (uint256);
    function slashableOf(address operator) external view returns (uint256);
    function freeze(address operator) external;
    function unfreeze(address operator) external;
    function freezeMany(address[] calldata operators) external;
    function unfreezeMany(address[] calldata operators) external;
    function depositEscrow() external payable;
    function slash(address operator, uint256 amount) external returns (uint256 taken);
    function distribute(address[] calldata recipients, uint256[] calldata amounts, uint256 toTreasury) external;
}
