"""volreg: the save path of a provincial college-application registration service."""
